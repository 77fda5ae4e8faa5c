// lib/core/journal/: pending usage kept on disk, so a killed process loses none.
/**
 * The usage journal (option `journal`): an append-only file per process, so usage recorded and not yet delivered
 * survives the process being killed, and is delivered by the next process that starts on the same directory.
 *
 * Nothing here runs on the request path: the core hands the journal each batch it drains from the recorder (every
 * `syncInterval`), each take a flush opens, then by key what it sends, what Kinde accepted, what was dropped, and
 * the take's end; the journal updates its picture of what is pending at once and writes lines in the background,
 * what arrives during a write going into the next one. Every file operation runs in one queue, so lines, rewrites
 * and take-overs never interleave. A failing disk is logged and counted; metering carries on in memory.
 */
import { mkdir, open, rename, rm, utimes, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { encodeLine, JournalState, type BodyLine } from './format.js'
import { describe, newOwnerId, releaseLock, syncDirectory, writeLock } from './files.js'
import { claimDeadJournals, TakeOvers, type ClaimedJournal, type Recovery } from './takeover.js'
import { DEFAULT_TIMING, type JournalConfig, type JournalTiming } from '../config/journal-options.js'
import type { JournalStats } from '../report/stats.js'
import { OpenTake, type Take } from '../store/take.js'
import type { Logger, UsageEntry } from '../usage/types.js'
import type { UsageJournal } from './usage-journal.js'

/** The journal is rewritten from memory once it outgrows this and four times its last rewrite. */
const COMPACT_MIN_BYTES = 1024 * 1024 // 1 MiB

export type { JournalTiming, Recovery }

/** This process's journal, and the take-over of journals left by dead processes. */
export class Journal implements UsageJournal {
  readonly #config: JournalConfig
  readonly #logger: Logger
  readonly #timing: JournalTiming
  readonly #owner = newOwnerId()
  readonly #path: string
  readonly #lockPath: string
  readonly #tmpPath: string
  /** What is pending, as the lines written or queued so far describe it. */
  readonly #state = new JournalState()
  /** The take a flush has open, until it settles. */
  readonly #open = new OpenTake()
  #status: JournalStats['state'] = 'opening'
  #handle: FileHandle | undefined
  // Stryker disable next-line ArrayDeclaration: the first write rewrites the journal from memory, which empties the queue unread
  #queue: string[] = []
  // Stryker disable next-line BooleanLiteral: nothing can be pushed before the opening write (recover) sets this false
  #writeQueued = false
  /** Whether the next write rewrites the whole journal from memory. */
  #rewrite = true
  /** Every file operation, in order: each task catches its own errors. */
  #tail: Promise<unknown> = Promise.resolve()
  #heartbeat: NodeJS.Timeout | undefined
  #bytes = 0
  #compactAt = COMPACT_MIN_BYTES
  #claims = 0
  /** Ids of journals taken over whose files are not deleted yet: written in the header so they are never replayed twice. */
  #absorbed = new Set<string>()
  /** Files to delete once what was taken over is safe in this journal. */
  #discard: string[] = []
  #writeErrors = 0
  /** While writes fail: epoch ms before which new usage does not retry. */
  #retryAt = 0
  #lastError: string | null = null
  readonly #takeOvers: TakeOvers

  /** @param dropAmbiguous true under `ambiguous: 'drop'`: usage a dead process had in flight is reported dropped, not sent again. */
  constructor (config: JournalConfig, dropAmbiguous: boolean, logger: Logger, timing: JournalTiming = DEFAULT_TIMING) {
    this.#config = config
    this.#takeOvers = new TakeOvers(dropAmbiguous, logger)
    this.#logger = logger
    this.#timing = timing
    this.#path = join(config.dir, `${this.#owner}.journal`)
    this.#lockPath = join(config.dir, `${this.#owner}.lock`)
    this.#tmpPath = join(config.dir, `${this.#owner}.tmp`)
  }

  /**
   * Opens the journal at the first call (creates the directory, locks it for this process),
   * then, at every call, takes over the journals of processes that died. Resolves with what
   * they left; never rejects (a directory that cannot be used turns the journal off).
   */
  recover (): Promise<Recovery> {
    return this.#enqueue(() => this.#recover())
  }

  /** Journals usage drained from the recorder: written with the next write, never awaited. */
  append (entries: UsageEntry[]): void {
    if (this.#status === 'off') return
    this.#push(this.#state.add(entries))
  }

  /** Resolves when everything journaled so far is written (or its write failed). Never rejects. */
  written (): Promise<void> { return this.#tail.then(() => {}) }

  /** How often, in ms, the core hands the journal what it recorded (option `journal.syncInterval`). */
  get syncInterval (): number { return this.#config.syncInterval }

  /** Follows a take a flush opened: its entries are named by key from now until it settles. */
  taken (take: Take): void { this.#open.follow(take) }

  /**
   * Journals the usage of a record about to be sent: in flight until delivered or settled.
   * Resolves once written, so that a process killed during the send leaves it marked.
   */
  sending (_take: string, keys: readonly string[]): Promise<void> {
    if (this.#status !== 'off') this.#push(this.#state.take(this.#open.entries(keys)))
    return this.written()
  }

  /** Journals the usage of a record Kinde accepted: no longer pending. Written with the next write. */
  delivered (_take: string, keys: readonly string[]): void {
    // Stryker disable next-line ConditionalExpression: a journal once off never writes again, so what it would note is never read
    if (this.#status !== 'off') this.#push(this.#state.delivered(this.#open.entries(keys)))
  }

  /** Sets dropped usage aside for the settle line, which the core asks for once the dead letter holds it. */
  dropped (_take: string, keys: readonly string[]): void { this.#open.drop(keys) }

  /** Nothing to write: the settle line makes what was in flight and is not listed pending again. */
  putBack (_take: string, _keys: readonly string[]): void {}

  /**
   * Journals the end of the take: what was reported dropped stops being pending; what was in
   * flight and put back failed without being applied. Resolves once written.
   */
  settle (_take: string): Promise<void> {
    const dropped = this.#open.end()
    // Stryker disable next-line ConditionalExpression: a journal once off never writes again, so what it would note is never read
    if (this.#status !== 'off') this.#push(this.#state.settle(dropped))
    return this.written()
  }

  /**
   * Stops journaling and deletes this process's files: call it once every pending usage was
   * delivered or reported dropped (the core's `close()` does). Never rejects.
   */
  close (): Promise<void> {
    return this.#enqueue(async () => {
      // Here, not before: an opening still queued would start the heartbeat after it.
      clearInterval(this.#heartbeat)
      if (this.#status === 'off') return
      this.#status = 'off'
      releaseLock(this.#owner)
      try {
        await this.#handle?.close()
        for (const path of [...this.#discard, this.#path, this.#lockPath]) await rm(path, { force: true })
      } catch (error) {
        this.#logger.error({ err: error, dir: this.#config.dir }, 'kinde-metering: the journal files could not be removed at close')
      }
    })
  }

  /** The journal's counters, for `stats()`. */
  stats (): JournalStats {
    return {
      state: this.#status,
      bytes: this.#bytes,
      writeErrors: this.#writeErrors,
      lastError: this.#lastError,
      recovered: this.#takeOvers.stats()
    }
  }

  #enqueue<T> (task: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(task)
    this.#tail = run
    return run
  }

  #push (line: BodyLine): void {
    // Until the journal is open, its first rewrite covers what the state already holds.
    if (this.#status === 'opening') return
    this.#queue.push(encodeLine(line))
    // A failing disk is retried at most every retryMs: a rewrite from memory is not cheap.
    if (this.#writeQueued || (this.#status === 'failing' && Date.now() < this.#retryAt)) return
    this.#writeQueued = true
    void this.#enqueue(() => this.#write())
  }

  /** Writes what is queued, or rewrites the whole journal when it must (first write, after a failure, grown too big). */
  async #write (): Promise<void> {
    this.#writeQueued = false
    const rewrite = this.#rewrite || this.#bytes >= this.#compactAt
    if (this.#status === 'off' || (!rewrite && this.#queue.length === 0)) return
    try {
      if (rewrite) {
        await this.#compact()
        return
      }
      const text = this.#queue.join('')
      this.#queue = []
      // writeFile, unlike write, goes on after a short write (a disk filling up) or throws.
      await this.#handle!.writeFile(text)
      if (this.#config.fsync) await this.#handle!.datasync()
      this.#bytes += Buffer.byteLength(text)
    } catch (error) {
      // The file may now miss lines or end in half of one: a rewrite from memory makes it whole.
      this.#rewrite = true
      this.#fail(error)
    }
  }

  /** Rewrites the journal from memory (aside, then renamed over it), then deletes what it absorbed. */
  async #compact (): Promise<void> {
    const text = this.#state.snapshot({ t: 'H', id: this.#owner, absorbed: [...this.#absorbed] })
    this.#queue = []
    const tmp = await open(this.#tmpPath, 'w')
    try {
      await tmp.writeFile(text)
      if (this.#config.fsync) await tmp.datasync()
    } finally {
      await tmp.close()
    }
    await rename(this.#tmpPath, this.#path)
    if (this.#config.fsync) await syncDirectory(this.#config.dir)
    const previous = this.#handle
    this.#handle = await open(this.#path, 'a')
    await previous?.close()
    this.#rewrite = false
    this.#bytes = Buffer.byteLength(text)
    // Stryker disable next-line ArithmeticOperator: how often the journal rewrites itself is a cost; what it holds is the same
    this.#compactAt = Math.max(COMPACT_MIN_BYTES, 4 * this.#bytes)
    for (const path of this.#discard) await rm(path, { force: true })
    // Stryker disable next-line ArrayDeclaration: a path that names no file is removed as nothing (rm with force)
    this.#discard = []
    this.#absorbed.clear()
    if (this.#status === 'failing') this.#logger.warn({ dir: this.#config.dir }, 'kinde-metering: journal writes succeed again')
    this.#status = 'open'
  }

  #fail (error: unknown): void {
    this.#retryAt = Date.now() + this.#timing.retryMs
    this.#writeErrors++
    this.#lastError = describe(error)
    if (this.#status === 'failing') return
    this.#status = 'failing'
    this.#logger.error({ err: error, dir: this.#config.dir },
      'kinde-metering: journal write failed; usage is still metered and delivered, but until writes succeed again a crash could lose it')
  }

  async #recover (): Promise<Recovery> {
    const nothing: Recovery = { pending: { entries: [], oldest: Infinity }, ambiguous: [] }
    if (this.#status === 'off') return nothing
    const opening = this.#status === 'opening'
    try {
      if (opening) {
        await mkdir(this.#config.dir, { recursive: true })
        await writeLock(this.#config.dir, this.#owner)
        this.#heartbeat = setInterval(() => { void this.#enqueue(() => this.#beat()) }, this.#timing.heartbeatMs).unref()
        this.#status = 'open'
      }
      const claimed = await claimDeadJournals(this.#config.dir, this.#owner, this.#timing.staleMs, () => ++this.#claims)
      this.#discard.push(...claimed.discard)
      const recovery = this.#absorb(claimed.found)
      // What was taken over must be in this journal before the files it came from are deleted.
      if (this.#discard.length > 0) this.#rewrite = true
      await this.#write()
      return recovery
    } catch (error) {
      if (!opening) {
        this.#fail(error)
        return nothing
      }
      clearInterval(this.#heartbeat)
      this.#status = 'off'
      this.#lastError = describe(error)
      this.#logger.error({ err: error, dir: this.#config.dir },
        'kinde-metering: the journal directory cannot be used; metering goes on in memory, without crash safety')
      return nothing
    }
  }

  /** Adds what the claimed journals hold to this journal; returns what to deliver and what to drop. */
  #absorb (found: ClaimedJournal[]): Recovery {
    const { recovery, absorbed } = this.#takeOvers.absorb(found)
    for (const id of absorbed) this.#absorbed.add(id)
    this.#state.add(recovery.pending.entries)
    return recovery
  }

  /**
   * Refreshes the lock (a lock that is gone means another process took this journal over), and
   * retries a failing journal even when no new usage comes.
   */
  async #beat (): Promise<void> {
    const now = new Date()
    try {
      await utimes(this.#lockPath, now, now)
      // Stryker disable next-line ConditionalExpression: on an open journal, every push already queued its write; one here at most compacts sooner: cost only
      if (this.#status === 'failing') await this.#write()
    } catch (error) {
      clearInterval(this.#heartbeat)
      this.#status = 'off'
      this.#lastError = describe(error)
      releaseLock(this.#owner)
      this.#logger.error({ err: error, dir: this.#config.dir },
        'kinde-metering: this process lost its journal lock (another process judged it dead and took its journal over); ' +
        'journaling stops, usage is still delivered, and what both hold may be delivered twice')
    }
  }
}
