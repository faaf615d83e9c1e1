/**
 * The file-system steps every writer of vdspec shares (golden files, the
 * sparse export, training checkpoints, records and plots): creating
 * directories, and writing a file so that a reader sees the old content or
 * the new, never a part. Errors are Node's own; each caller words them for
 * its argument.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

/**
 * mkdir -p, one level at a time: Node 20's recursive mkdirSync spins forever
 * on some paths (seen: under /proc), where this fails with a clear error.
 */
export function makeDirectories(dir: string): void {
  const absolute = resolve(dir);
  if (existsSync(absolute)) {
    if (!statSync(absolute).isDirectory()) {
      throw Object.assign(new Error(`${absolute} is a file, not a directory`), {
        code: 'ENOTDIR',
      });
    }
    return;
  }
  const parent = dirname(absolute);
  if (parent !== absolute) makeDirectories(parent);
  mkdirSync(absolute);
}

/** A file system error in plain words: what went wrong, without Node's `EACCES: ..., open '<path>'`. */
export function plainFileError(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  switch (e.code) {
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'the file system is read-only';
    case 'ENOSPC':
      return 'the disk is full';
    case 'ENOENT':
      return 'no such file or directory';
    case 'ENOTDIR':
      // makeDirectories' own message names the file in the way.
      return e.message.startsWith('ENOTDIR') ? 'a part of the path is a file' : e.message;
    default:
      return e instanceof Error ? e.message : String(e);
  }
}

let temporaryCounter = 0;

/** A fresh temporary name beside `path`, so that the rename stays on one file system. */
export function temporaryBeside(path: string): string {
  temporaryCounter += 1;
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${temporaryCounter}`);
}

/** Create `path` (it must not exist) with `data`, flushed to disk before it is closed. */
export function writeFlushed(path: string, data: string | Uint8Array): void {
  const fd = openSync(path, 'wx');
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Replace `path` with `data` atomically: written and flushed under a
 * temporary name beside it, then renamed. On failure `path` is untouched,
 * the temporary file removed and the error rethrown.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const temporary = temporaryBeside(path);
  try {
    writeFlushed(temporary, data);
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}
