import { describe, expect, it } from 'vitest';
import { fromGraphQLErrors, OpsgraphError, RetryableEnd } from '../../client/src/errors.ts';

describe('client stream endings', () => {
  it('resumes a live list where the server says when it ends the stream before any message', () => {
    const end = fromGraphQLErrors([
      { message: 'shutting down', extensions: { code: 'SERVER_SHUTTING_DOWN', after: 'cursor-1' } },
    ]);
    expect(end).toBeInstanceOf(RetryableEnd);
    expect((end as RetryableEnd).resumeAfter).toBe('cursor-1');
    const bare = fromGraphQLErrors([{ message: 'too slow', extensions: { code: 'SUBSCRIBER_TOO_SLOW' } }]);
    expect((bare as RetryableEnd).resumeAfter).toBeUndefined();
    expect(fromGraphQLErrors([{ message: 'gone', extensions: { code: 'NOT_FOUND' } }])).toBeInstanceOf(
      OpsgraphError,
    );
  });
});
