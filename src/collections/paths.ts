import { readdir, realpath, stat } from 'node:fs/promises';
import { extname, isAbsolute, join, relative, sep } from 'node:path';

/** Text files a folder source reads; everything else in the folder is ignored. */
export const TEXT_EXTENSIONS = new Set(['.txt', '.md', '.markdown']);

/** Most files one folder source may hold. */
export const MAX_FOLDER_FILES = 100_000;

export type Resolved<T> = { ok: true; value: T } | { ok: false; problem: string };

const fail = (problem: string): Resolved<never> => ({ ok: false, problem });

/** True when `path` is `root` or inside it (both already real paths). */
const isInside = (root: string, path: string) => path === root || path.startsWith(root + sep);

/**
 * Resolves a client-given relative path inside `root`, following symlinks, without reading any
 * file. Rejects absolute paths, `..` segments, NUL characters, and anything whose real location
 * is outside the root (a symlink out). `label` names the root in messages.
 */
export async function resolveInside(root: string, path: string, label: string): Promise<Resolved<string>> {
  if (path.includes('\0')) return fail('must not contain NUL characters');
  if (isAbsolute(path) || /^[a-zA-Z]:[\\/]/.test(path)) {
    return fail(`must be relative to ${label}, not an absolute path`);
  }
  if (path.split(/[\\/]/).includes('..')) return fail(`must stay inside ${label}: ".." is not allowed`);
  let realRoot: string;
  try {
    realRoot = await realpath(root);
  } catch {
    return fail(`${label} does not exist on the server`);
  }
  let real: string;
  try {
    real = await realpath(join(realRoot, path));
  } catch {
    return fail(`does not exist in ${label}`);
  }
  if (!isInside(realRoot, real)) return fail(`points outside ${label} (through a symlink)`);
  return { ok: true, value: real };
}

/** One file of a folder source. */
export interface FolderFile {
  /** Path relative to the source folder, with `/` separators: the document's external id. */
  relativePath: string;
  absolutePath: string;
}

/**
 * Lists the text files under `folder` (a real path inside `root`), recursively, in a stable order.
 * Reads directory entries only, no file contents. A symlink whose target is outside the root
 * rejects the whole source; symlinked folders are followed once.
 */
export async function listFolder(
  root: string,
  folder: string,
  label: string,
): Promise<Resolved<FolderFile[]>> {
  const realRoot = await realpath(root);
  const info = await stat(folder);
  if (!info.isDirectory()) return fail('is not a folder');
  const files: FolderFile[] = [];
  const visited = new Set<string>([folder]);
  const walk = async (dir: string, prefix: string): Promise<string | undefined> => {
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const shown = prefix ? `${prefix}/${entry.name}` : entry.name;
      let path = join(dir, entry.name);
      let isDir = entry.isDirectory();
      let isFile = entry.isFile();
      if (entry.isSymbolicLink()) {
        try {
          path = await realpath(path);
        } catch {
          continue; // a dangling link reads nothing
        }
        if (!isInside(realRoot, path)) return `contains "${shown}", a symlink pointing outside ${label}`;
        const target = await stat(path);
        isDir = target.isDirectory();
        isFile = target.isFile();
      }
      if (isDir) {
        if (visited.has(path)) continue;
        visited.add(path);
        const problem = await walk(path, shown);
        if (problem) return problem;
      } else if (isFile && TEXT_EXTENSIONS.has(extname(entry.name).toLowerCase())) {
        if (files.length >= MAX_FOLDER_FILES) return `holds more than ${MAX_FOLDER_FILES} text files`;
        files.push({ relativePath: shown, absolutePath: path });
      }
    }
    return undefined;
  };
  const problem = await walk(folder, '');
  return problem ? fail(problem) : { ok: true, value: files };
}

/** `path` relative to `root` with `/` separators (for messages and source names). */
export const shownPath = (root: string, path: string) => relative(root, path).split(sep).join('/') || '.';
