import { jwtVerify, SignJWT } from 'jose';
import { DEFAULT_CREDITS } from '../config.ts';
import { openAccount } from '../credits/ledger.ts';
import type { Db } from '../db/prisma.ts';

/** The authenticated user a request acts for. */
export interface Viewer {
  id: string;
  name: string;
  isAdmin: boolean;
}

/** A bearer token that is malformed, expired, badly signed, or names no user. */
export class InvalidTokenError extends Error {
  override name = 'InvalidTokenError';
}

const key = (secret: string) => new TextEncoder().encode(secret);

/** A viewer and the moment (epoch ms) its token stops working. */
export interface Session {
  viewer: Viewer;
  /** When the token's `exp` passes, in epoch milliseconds. */
  expiresAt: number;
}

/** Signs an HS256 token for a user id, always with `exp`. Default lifetime 30 days. */
export async function signToken(secret: string, userId: string, expiresIn = '30d'): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(key(secret));
}

/**
 * Resolves an `Authorization` value (`Bearer <jwt>`, or the bare token) to its session. Absent →
 * null; present but invalid, expired, without `exp` or naming no user → InvalidTokenError (never
 * a silent anonymous request).
 */
export async function resolveSession(
  db: Db,
  secret: string,
  authorization: string | null | undefined,
): Promise<Session | null> {
  if (!authorization) return null;
  const token = authorization.replace(/^Bearer\s+/i, '').trim();
  let userId: string | undefined;
  let exp: number;
  try {
    const { payload } = await jwtVerify(token, key(secret), {
      algorithms: ['HS256'],
      requiredClaims: ['exp', 'sub'],
    });
    userId = payload.sub;
    exp = payload.exp as number;
  } catch {
    throw new InvalidTokenError('The bearer token is invalid or expired');
  }
  if (!userId || !/^[0-9a-f-]{36}$/i.test(userId))
    throw new InvalidTokenError('The bearer token names no user');
  const user = await db.user.findUnique({ where: { id: userId } });
  if (!user) throw new InvalidTokenError('The bearer token names no user');
  return { viewer: { id: user.id, name: user.name, isAdmin: user.isAdmin }, expiresAt: exp * 1000 };
}

/** resolveSession's viewer. */
export async function resolveViewer(
  db: Db,
  secret: string,
  authorization: string | null | undefined,
): Promise<Viewer | null> {
  return (await resolveSession(db, secret, authorization))?.viewer ?? null;
}

/** Options of issueToken. */
export interface IssueTokenOptions {
  /** Token lifetime as a jose time span: `'30d'`, `'2h'`, `'90s'`. Default `'30d'`. */
  expiresIn?: string;
  /**
   * Credits a user gets when it has no credit account yet (a new user): config.defaultCredits.
   * Default 1,000,000 (DEFAULT_CREDITS).
   */
  initialCredits?: number;
}

/**
 * Finds or creates the user with this name and returns a token for it. `admin` true or false sets
 * the user's admin flag (creating or updating); undefined leaves an existing user's flag as it is
 * (a new user is not an admin).
 */
export async function issueToken(
  db: Db,
  secret: string,
  name: string,
  admin?: boolean,
  options: IssueTokenOptions = {},
): Promise<string> {
  const user = await db.user.upsert({
    where: { name },
    update: admin === undefined ? {} : { isAdmin: admin },
    create: { name, isAdmin: admin ?? false },
  });
  await openAccount(db, user.id, options.initialCredits ?? DEFAULT_CREDITS);
  return signToken(secret, user.id, options.expiresIn);
}

/** Resolves `Authorization` values to viewers, remembering each token's viewer briefly. */
export interface ViewerResolver {
  (authorization: string | null | undefined): Promise<Viewer | null>;
  /** The same, with the moment the token expires. */
  session(authorization: string | null | undefined): Promise<Session | null>;
  /**
   * The viewer when the answer is known without waiting: no `Authorization` (null), or a token
   * whose viewer is remembered and still fresh. Undefined otherwise (call the resolver).
   */
  known(authorization: string | null | undefined): Viewer | null | undefined;
}

/**
 * A resolveSession with a small cache: a token's viewer is reused for `ttlMs` (default 5000) but
 * never past its token's `exp`, so busy clients do not cost a user lookup per request and an
 * expired token fails at once. A user's admin flag or deletion therefore takes up to `ttlMs` to
 * apply. Invalid tokens are never cached. At most `maxEntries` (default 10,000) are kept.
 */
export function createViewerResolver(
  db: Db,
  secret: string,
  ttlMs = 5000,
  maxEntries = 10_000,
): ViewerResolver {
  const cache = new Map<string, { session: Session; until: number }>();
  /** The fresh remembered session of a token, if any (a stale one is forgotten). */
  const fresh = (authorization: string): Session | undefined => {
    const hit = cache.get(authorization);
    if (!hit) return undefined;
    if (hit.until > Date.now()) return hit.session;
    cache.delete(authorization);
    return undefined;
  };
  const session = async (authorization: string | null | undefined): Promise<Session | null> => {
    if (!authorization) return null;
    const hit = fresh(authorization);
    if (hit) return hit;
    const found = await resolveSession(db, secret, authorization);
    if (found) {
      if (cache.size >= maxEntries) cache.clear();
      cache.set(authorization, { session: found, until: Math.min(Date.now() + ttlMs, found.expiresAt) });
    }
    return found;
  };
  const resolver = (async (authorization) =>
    (await session(authorization))?.viewer ?? null) as ViewerResolver;
  resolver.session = session;
  resolver.known = (authorization) => (authorization ? fresh(authorization)?.viewer : null);
  return resolver;
}
