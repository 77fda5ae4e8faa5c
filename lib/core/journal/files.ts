// lib/core/journal/: pending usage kept on disk, so a killed process loses none.
/**
 * Who owns which file in a journal directory, and whether the owner is still alive.
 *
 * Every process that journals has an owner id (`<pid>-<8 hex>`) and, while it lives, a lock file
 * `<owner>.lock` holding its pid and host name, whose modification time it refreshes as a
 * heartbeat. Its journal is `<owner>.journal`; journals it took over from dead owners are renamed
 * `<owner>~<n>.journal` (the rename is the claim: of two processes racing for one file, only one
 * rename succeeds); `<owner>.tmp` is a file being written before it is renamed into place.
 */
import { randomBytes } from 'node:crypto'
import { open, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'

/** What a lock file says. */
interface LockInfo {
  pid: number
  host: string
  id: string
}

/** A file of the journal directory, by owner. */
export interface OwnedFile {
  name: string
  owner: string
  type: 'lock' | 'journal' | 'tmp'
}

const FILE_NAME = /^(\d+-[0-9a-f]{8})(?:~\d+)?\.(lock|journal|tmp)$/

/** Owner ids of journals open in this process: same pid, alive, never to be taken over. */
const openHere = new Set<string>()

/** A fresh owner id for this process. */
export function newOwnerId (): string {
  return `${process.pid}-${randomBytes(4).toString('hex')}`
}

/** Parses a directory entry's name; `undefined` for files that are not a journal's. */
export function ownedFile (name: string): OwnedFile | undefined {
  const match = FILE_NAME.exec(name)
  return match === null ? undefined : { name, owner: match[1], type: match[2] as OwnedFile['type'] }
}

/** Writes this process's lock file (atomically: readers never see it half written). */
export async function writeLock (dir: string, owner: string): Promise<void> {
  const info: LockInfo = { pid: process.pid, host: hostname(), id: owner }
  const tmp = join(dir, `${owner}.tmp`)
  await writeFile(tmp, JSON.stringify(info))
  await rename(tmp, join(dir, `${owner}.lock`))
  openHere.add(owner)
}

/** Forgets that `owner` is open in this process (at close, or when it lost its lock). */
// Stryker disable next-line BlockStatement: a released owner's lock is gone (close removed it; a lost lock is why it was released), so ownerIsGone says gone before it asks openHere
export function releaseLock (owner: string): void {
  openHere.delete(owner)
}

/**
 * Whether `owner` is gone, so its journals may be taken over:
 * - no lock: gone (a live owner writes its lock before its journal and removes it after; one
 *   taking a journal over renames the journal before it removes the lock);
 * - same host: gone when its pid is no process, or is this process's pid under another id (a
 *   restarted container reuses pids);
 * - on any host: gone when its heartbeat is older than `staleMs` (a process on another host, or
 *   one whose pid now belongs to another program).
 */
export async function ownerIsGone (dir: string, owner: string, staleMs: number): Promise<boolean> {
  const path = join(dir, `${owner}.lock`)
  let text: string
  let modified: number
  try {
    modified = (await stat(path)).mtimeMs
    text = await readFile(path, 'utf8')
  } catch {
    return true
  }
  // Stryker disable next-line EqualityOperator: a lock exactly staleMs old is as stale as one a millisecond older; heartbeats are not timed to the millisecond
  if (Date.now() - modified > staleMs) return true
  let info: Partial<LockInfo>
  try {
    info = JSON.parse(text)
  } catch {
    return false
  }
  if (info.host !== hostname() || typeof info.pid !== 'number') return false
  if (info.pid === process.pid) return !openHere.has(String(info.id))
  return !processExists(info.pid)
}

function processExists (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Makes a rename inside the directory durable. */
export async function syncDirectory (dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** Node's file system errors start with their code: `ENOSPC: no space left on device, write`. */
export function describe (error: unknown): string {
  return (error as Error).message
}
