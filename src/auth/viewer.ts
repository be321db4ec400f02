import { jwtVerify, SignJWT } from 'jose';
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

/** Signs an HS256 token for a user id. Default lifetime 30 days. */
export async function signToken(secret: string, userId: string, expiresIn = '30d'): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(key(secret));
}

/**
 * Resolves an `Authorization` value (`Bearer <jwt>`, or the bare token) to its viewer. Absent →
 * null; present but invalid → InvalidTokenError (never a silent anonymous request).
 */
export async function resolveViewer(
  db: Db,
  secret: string,
  authorization: string | null | undefined,
): Promise<Viewer | null> {
  if (!authorization) return null;
  const token = authorization.replace(/^Bearer\s+/i, '').trim();
  let userId: string | undefined;
  try {
    const { payload } = await jwtVerify(token, key(secret), { algorithms: ['HS256'] });
    userId = payload.sub;
  } catch {
    throw new InvalidTokenError('The bearer token is invalid or expired');
  }
  if (!userId || !/^[0-9a-f-]{36}$/i.test(userId))
    throw new InvalidTokenError('The bearer token names no user');
  const user = await db.user.findUnique({ where: { id: userId } });
  if (!user) throw new InvalidTokenError('The bearer token names no user');
  return { id: user.id, name: user.name, isAdmin: user.isAdmin };
}

/** Finds or creates the user with this name and returns a token for it. */
export async function issueToken(db: Db, secret: string, name: string, isAdmin: boolean): Promise<string> {
  const user = await db.user.upsert({
    where: { name },
    update: { isAdmin },
    create: { name, isAdmin },
  });
  return signToken(secret, user.id);
}

/** Resolves `Authorization` values to viewers, remembering each token's viewer briefly. */
export type ViewerResolver = (authorization: string | null | undefined) => Promise<Viewer | null>;

/**
 * A resolveViewer with a small cache: a token's viewer is reused for `ttlMs` (default 5000), so
 * busy clients do not cost a user lookup per request. A user's admin flag or deletion therefore
 * takes up to `ttlMs` to apply. Invalid tokens are never cached. At most `maxEntries` (default
 * 10,000) are kept.
 */
export function createViewerResolver(
  db: Db,
  secret: string,
  ttlMs = 5000,
  maxEntries = 10_000,
): ViewerResolver {
  const cache = new Map<string, { viewer: Viewer; until: number }>();
  return async (authorization) => {
    if (!authorization) return null;
    const hit = cache.get(authorization);
    if (hit && hit.until > Date.now()) return hit.viewer;
    const viewer = await resolveViewer(db, secret, authorization);
    if (viewer) {
      if (cache.size >= maxEntries) cache.clear();
      cache.set(authorization, { viewer, until: Date.now() + ttlMs });
    }
    return viewer;
  };
}
