/** A start that would need more credits than the owner has available; nothing was created. */
export class InsufficientCreditsError extends Error {
  override name = 'InsufficientCreditsError';
  constructor(
    /** What the start would reserve: its type's cost (a batch: its own plus its items'). */
    readonly required: number,
    /** The owner's balance when it was refused (reserved credits not included). */
    readonly available: number,
  ) {
    super(`This start needs ${required} credits; ${available} are available`);
  }
}
