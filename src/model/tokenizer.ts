/**
 * Tokenizer for Hugging Face `tokenizer.json` files with a BPE model — the two layouts
 * small Llama-family checkpoints ship:
 *
 * - byte-level BPE (GPT-2 / SmolLM / Qwen style): the `ByteLevel` pre-tokenizer splits text
 *   with the GPT-2 regex and maps every UTF-8 byte to a printable character
 *   (`bytes_to_unicode`); the `ByteLevel` decoder maps back.
 * - SentencePiece-style BPE with byte fallback (Llama-2 / TinyLlama style): the normalizer
 *   prepends `▁` and replaces spaces by `▁` (or the `Metaspace` pre-tokenizer does), the
 *   whole text is one word, characters missing from the vocabulary become `<0xXX>` byte
 *   tokens; the decoder replaces `▁` by spaces, fuses bytes back into UTF-8 and strips the
 *   first space.
 *
 * Added tokens (`<s>`, `<|bos|>`, `<|doc|>` ...) are matched in the raw text first (as
 * transformers does) and never split. The post-processor's template (`TemplateProcessing`)
 * decides which specials `encode` adds (e.g. BOS in front).
 *
 * BPE itself follows `tokenizers`' `Word::merge_all`: repeatedly merge the adjacent pair
 * with the lowest merge rank, leftmost first. Anything the file holds that this reader does
 * not implement is refused with `E_UNSUPPORTED` naming the field; a malformed file with
 * `E_MODEL`.
 */
import { EdgeKVError } from '../errors.ts';

/** GPT-2's pre-tokenization pattern (the `ByteLevel` pre-tokenizer with `use_regex`). */
const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
/** SentencePiece's word-boundary marker (U+2581). */
export const SP_SPACE = '\u2581';
/** Per-word BPE results kept (byte-level texts repeat words a lot). */
const WORD_CACHE_LIMIT = 200_000;

/** Options of `encode`. */
export interface EncodeOptions {
  /** Add the post-processor's special tokens (e.g. BOS in front). Default true. */
  addSpecialTokens?: boolean;
  /** Match added tokens such as `<|doc|>` in the text. Default true. */
  parseSpecial?: boolean;
}

/** Options of `decode`. */
export interface DecodeOptions {
  /** Drop special tokens (BOS, EOS, `<|doc|>` ...). Default false. */
  skipSpecialTokens?: boolean;
}

type Json = Record<string, unknown>;
type Normalizer = (s: string) => string;
type PreTokenizer = (s: string) => string[];
type Decoder = (tokens: string[]) => string[];

/** GPT-2's reversible byte <-> printable character map. */
function bytesToUnicode(): { enc: string[]; dec: Map<string, number> } {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) { bs.push(b); cs.push(256 + n); n++; }
  }
  const enc = new Array<string>(256);
  const dec = new Map<string, number>();
  for (let i = 0; i < bs.length; i++) { enc[bs[i]] = String.fromCodePoint(cs[i]); dec.set(enc[bs[i]], bs[i]); }
  return { enc, dec };
}
const BYTE_MAP = bytesToUnicode();

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Binary min-heap of merge candidates keyed by (rank, position). */
class MergeHeap {
  private rank: number[] = [];
  private pos: number[] = [];
  get size(): number { return this.rank.length; }
  private less(i: number, j: number): boolean {
    return this.rank[i] < this.rank[j] || (this.rank[i] === this.rank[j] && this.pos[i] < this.pos[j]);
  }
  private swap(i: number, j: number): void {
    const r = this.rank[i]; this.rank[i] = this.rank[j]; this.rank[j] = r;
    const p = this.pos[i]; this.pos[i] = this.pos[j]; this.pos[j] = p;
  }
  push(rank: number, pos: number): void {
    this.rank.push(rank); this.pos.push(pos);
    let i = this.rank.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent); i = parent;
    }
  }
  /** Pop the minimum; returns [rank, pos]. */
  pop(): [number, number] {
    const top: [number, number] = [this.rank[0], this.pos[0]];
    const lastR = this.rank.pop()!, lastP = this.pos.pop()!;
    if (this.rank.length > 0) {
      this.rank[0] = lastR; this.pos[0] = lastP;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < this.rank.length && this.less(l, m)) m = l;
        if (r < this.rank.length && this.less(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m); i = m;
      }
    }
    return top;
  }
}

/** A tokenizer read from `tokenizer.json` (BPE model). */
export class Tokenizer {
  /** Token string of each id (model vocabulary and added tokens). */
  readonly idToToken: string[];
  /** Id of each token string. */
  readonly tokenToId: Map<string, number>;
  /** Ids of added tokens marked special. */
  readonly specialIds: Set<number>;
  /** 'byte-level' or 'sentencepiece' (byte fallback). */
  readonly kind: 'byte-level' | 'sentencepiece';
  /** Ids the post-processor puts before / after the text. */
  readonly prefixIds: number[];
  readonly suffixIds: number[];
  private readonly merges = new Map<number, number>(); // (a * V + b) -> merge index
  private readonly mergeResult: Int32Array;
  private readonly normalizers: Normalizer[];
  private readonly preTokenizers: PreTokenizer[];
  private readonly decoders: Decoder[];
  private readonly addedSplit: RegExp | null;
  private readonly addedIds = new Map<string, number>();
  private readonly byteLevel: boolean;
  private readonly byteFallback: boolean;
  private readonly unkId: number | null;
  private readonly fuseUnk: boolean;
  private readonly ignoreMerges: boolean;
  private readonly byteTokenIds: Int32Array; // <0xXX> ids, -1 when absent
  private readonly cache = new Map<string, number[]>();

  private constructor(json: Json, file: string) {
    const model = json.model as Json | undefined;
    if (!model || typeof model !== 'object') fail(file, 'model', 'is missing or not an object');
    if (model.type !== undefined && model.type !== 'BPE') unsup(file, 'model.type', `= ${JSON.stringify(model.type)}: only BPE tokenizers are supported`);
    for (const f of ['continuing_subword_prefix', 'end_of_word_suffix'] as const) {
      if (model[f] !== undefined && model[f] !== null && model[f] !== '') unsup(file, `model.${f}`, `= ${JSON.stringify(model[f])} is not supported`);
    }
    if (model.dropout !== undefined && model.dropout !== null && model.dropout !== 0) unsup(file, 'model.dropout', 'BPE dropout is not supported (inference tokenizers have none)');
    const vocab = model.vocab as Json | undefined;
    if (!vocab || typeof vocab !== 'object' || Array.isArray(vocab)) fail(file, 'model.vocab', 'is missing or not an object of token -> id');
    this.tokenToId = new Map();
    this.idToToken = [];
    for (const [tok, id] of Object.entries(vocab)) {
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) fail(file, `model.vocab[${JSON.stringify(tok)}]`, `must be a non-negative integer id, got ${JSON.stringify(id)}`);
      this.tokenToId.set(tok, id);
      this.idToToken[id] = tok;
    }
    this.specialIds = new Set();
    const added = (json.added_tokens ?? []) as unknown;
    if (!Array.isArray(added)) fail(file, 'added_tokens', 'must be a list');
    const addedContents: string[] = [];
    added.forEach((a, i) => {
      const t = a as Json;
      if (!t || typeof t.content !== 'string' || typeof t.id !== 'number') fail(file, `added_tokens[${i}]`, 'must have a string "content" and an integer "id"');
      this.tokenToId.set(t.content, t.id);
      this.idToToken[t.id] = t.content;
      this.addedIds.set(t.content, t.id);
      if (t.special) this.specialIds.add(t.id);
      if (t.content.length > 0) addedContents.push(t.content);
    });
    addedContents.sort((a, b) => b.length - a.length);
    this.addedSplit = addedContents.length ? new RegExp(`(${addedContents.map(escapeRegex).join('|')})`, 'g') : null;

    const V = this.idToToken.length;
    const mergesRaw = (model.merges ?? []) as unknown;
    if (!Array.isArray(mergesRaw)) fail(file, 'model.merges', 'must be a list');
    this.mergeResult = new Int32Array(mergesRaw.length);
    mergesRaw.forEach((m, i) => {
      let a: string, b: string;
      if (typeof m === 'string') {
        const sp = m.indexOf(' ');
        if (sp <= 0 || m.indexOf(' ', sp + 1) !== -1) fail(file, `model.merges[${i}]`, `= ${JSON.stringify(m)} is not "LEFT RIGHT"`);
        a = m.slice(0, sp); b = m.slice(sp + 1);
      } else if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') {
        [a, b] = m as [string, string];
      } else {
        fail(file, `model.merges[${i}]`, `= ${JSON.stringify(m)} is neither "LEFT RIGHT" nor ["LEFT", "RIGHT"]`);
      }
      const ia = this.tokenToId.get(a), ib = this.tokenToId.get(b), ir = this.tokenToId.get(a + b);
      if (ia === undefined || ib === undefined || ir === undefined) {
        fail(file, `model.merges[${i}]`, `= ${JSON.stringify(m)} refers to a token missing from model.vocab`);
      }
      const key = ia * V + ib;
      if (!this.merges.has(key)) this.merges.set(key, i);
      this.mergeResult[i] = ir;
    });

    this.byteFallback = model.byte_fallback === true;
    this.fuseUnk = model.fuse_unk === true;
    this.ignoreMerges = model.ignore_merges === true;
    const unk = model.unk_token;
    this.unkId = typeof unk === 'string' ? this.tokenToId.get(unk) ?? null : null;
    if (typeof unk === 'string' && this.unkId === null) fail(file, 'model.unk_token', `= ${JSON.stringify(unk)} is not in model.vocab`);
    this.byteTokenIds = new Int32Array(256).fill(-1);
    for (let b = 0; b < 256; b++) {
      const id = this.tokenToId.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
      if (id !== undefined) this.byteTokenIds[b] = id;
    }

    this.normalizers = parseNormalizer(json.normalizer, file, 'normalizer');
    const pre = parsePreTokenizer(json.pre_tokenizer, file, 'pre_tokenizer');
    this.preTokenizers = pre.fns;
    this.byteLevel = pre.byteLevel;
    this.kind = this.byteLevel ? 'byte-level' : 'sentencepiece';
    this.decoders = parseDecoder(json.decoder, file, 'decoder');
    const post = parsePostProcessor(json.post_processor, file, this.tokenToId);
    this.prefixIds = post.prefix;
    this.suffixIds = post.suffix;
  }

  /** Parse `tokenizer.json` text; `file` names it in errors. */
  static fromJSON(text: string, file = 'tokenizer.json'): Tokenizer {
    let json: unknown;
    try { json = JSON.parse(text); } catch (e) { throw new EdgeKVError('E_MODEL', `${file}: not valid JSON (${(e as Error).message})`, file); }
    if (!json || typeof json !== 'object' || Array.isArray(json)) throw new EdgeKVError('E_MODEL', `${file}: must be a JSON object`, file);
    return new Tokenizer(json as Json, file);
  }

  /** Number of ids (model vocabulary plus added tokens). */
  get vocabSize(): number { return this.idToToken.length; }

  /** Token ids of `text`. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new EdgeKVError('E_ARG', `text = ${String(text)} is not allowed: expected a string`, 'text');
    const out: number[] = [];
    if (options.addSpecialTokens !== false) out.push(...this.prefixIds);
    const parts = options.parseSpecial === false || !this.addedSplit ? [text] : text.split(this.addedSplit);
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (part === '') continue;
      const added = options.parseSpecial === false ? undefined : i % 2 === 1 ? this.addedIds.get(part) : undefined;
      if (added !== undefined) { out.push(added); continue; }
      this.encodeSegment(part, out);
    }
    if (options.addSpecialTokens !== false) out.push(...this.suffixIds);
    return out;
  }

  /** Text of `ids`. */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const tokens: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      const t = this.idToToken[id];
      if (t === undefined) throw new EdgeKVError('E_ARG', `ids[${i}] = ${id} is not allowed: expected a token id in [0, ${this.idToToken.length - 1}]`, `ids[${i}]`);
      if (options.skipSpecialTokens && this.specialIds.has(id)) continue;
      tokens.push(t);
    }
    let toks = tokens;
    for (const d of this.decoders) toks = d(toks);
    return toks.join('');
  }

  private encodeSegment(text: string, out: number[]): void {
    let s = text;
    for (const n of this.normalizers) s = n(s);
    let words = [s];
    for (const p of this.preTokenizers) words = words.flatMap(p);
    for (const w of words) {
      if (w === '') continue;
      let ids = this.cache.get(w);
      if (!ids) {
        ids = this.bpeWord(w);
        if (this.cache.size >= WORD_CACHE_LIMIT) this.cache.clear();
        this.cache.set(w, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  /** Initial symbols of a word: one per character, byte fallback / unk for unknown ones. */
  private initialSymbols(word: string): number[] {
    const syms: number[] = [];
    let lastUnk = false;
    for (const ch of word) {
      const id = this.tokenToId.get(ch);
      if (id !== undefined && !(this.addedIds.has(ch) && this.specialIds.has(id))) { syms.push(id); lastUnk = false; continue; }
      if (this.byteFallback) {
        const bytes = new TextEncoder().encode(ch);
        let ok = true;
        for (const b of bytes) if (this.byteTokenIds[b] < 0) ok = false;
        if (ok) { for (const b of bytes) syms.push(this.byteTokenIds[b]); lastUnk = false; continue; }
      }
      if (this.unkId === null) {
        throw new EdgeKVError('E_MODEL', `tokenizer: character ${JSON.stringify(ch)} is not in the vocabulary and the tokenizer has no unk_token or byte fallback`, 'text');
      }
      if (!(this.fuseUnk && lastUnk)) syms.push(this.unkId);
      lastUnk = true;
    }
    return syms;
  }

  private bpeWord(word: string): number[] {
    if (this.ignoreMerges) {
      const whole = this.tokenToId.get(word);
      if (whole !== undefined) return [whole];
    }
    const ids = this.initialSymbols(word);
    const n = ids.length;
    if (n < 2 || this.merges.size === 0) return ids;
    const V = this.idToToken.length;
    const next = new Int32Array(n), prev = new Int32Array(n);
    for (let i = 0; i < n; i++) { next[i] = i + 1 < n ? i + 1 : -1; prev[i] = i - 1; }
    const alive = new Uint8Array(n).fill(1);
    const heap = new MergeHeap();
    for (let i = 0; i + 1 < n; i++) {
      const m = this.merges.get(ids[i] * V + ids[i + 1]);
      if (m !== undefined) heap.push(m, i);
    }
    while (heap.size > 0) {
      const [rank, pos] = heap.pop();
      if (!alive[pos]) continue;
      const nx = next[pos];
      if (nx < 0) continue;
      // Stale entry: the pair at pos changed since it was pushed.
      if (this.merges.get(ids[pos] * V + ids[nx]) !== rank) continue;
      ids[pos] = this.mergeResult[rank];
      alive[nx] = 0;
      next[pos] = next[nx];
      if (next[nx] >= 0) prev[next[nx]] = pos;
      const p = prev[pos];
      if (p >= 0) {
        const m = this.merges.get(ids[p] * V + ids[pos]);
        if (m !== undefined) heap.push(m, p);
      }
      const q = next[pos];
      if (q >= 0) {
        const m = this.merges.get(ids[pos] * V + ids[q]);
        if (m !== undefined) heap.push(m, pos);
      }
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) out.push(ids[i]);
    return out;
  }
}

function fail(file: string, field: string, msg: string): never {
  throw new EdgeKVError('E_MODEL', `${file}: field "${field}" ${msg}`, field);
}
function unsup(file: string, field: string, msg: string): never {
  throw new EdgeKVError('E_UNSUPPORTED', `${file}: field "${field}" ${msg}`, field);
}

function stringPattern(p: unknown, file: string, field: string): string {
  const s = (p as Json | null)?.String;
  if (typeof s !== 'string') unsup(file, field, `= ${JSON.stringify(p)}: only {"String": ...} patterns are supported`);
  return s;
}

function parseNormalizer(n: unknown, file: string, field: string): Normalizer[] {
  if (n === null || n === undefined) return [];
  const j = n as Json;
  switch (j.type) {
    case 'Sequence': {
      if (!Array.isArray(j.normalizers)) fail(file, `${field}.normalizers`, 'must be a list');
      return (j.normalizers as unknown[]).flatMap((x, i) => parseNormalizer(x, file, `${field}.normalizers[${i}]`));
    }
    case 'Prepend': {
      const pre = j.prepend;
      if (typeof pre !== 'string') fail(file, `${field}.prepend`, 'must be a string');
      return [(s) => (s.length > 0 ? pre + s : s)];
    }
    case 'Replace': {
      const from = stringPattern(j.pattern, file, `${field}.pattern`);
      const to = j.content;
      if (typeof to !== 'string') fail(file, `${field}.content`, 'must be a string');
      return [(s) => s.split(from).join(to)];
    }
    case 'NFC': return [(s) => s.normalize('NFC')];
    case 'NFKC': return [(s) => s.normalize('NFKC')];
    default: unsup(file, `${field}.type`, `= ${JSON.stringify(j.type)} is not supported (supported: Sequence, Prepend, Replace, NFC, NFKC)`);
  }
}

function parsePreTokenizer(p: unknown, file: string, field: string): { fns: PreTokenizer[]; byteLevel: boolean } {
  if (p === null || p === undefined) return { fns: [], byteLevel: false };
  const j = p as Json;
  switch (j.type) {
    case 'Sequence': {
      if (!Array.isArray(j.pretokenizers)) fail(file, `${field}.pretokenizers`, 'must be a list');
      const parts = (j.pretokenizers as unknown[]).map((x, i) => parsePreTokenizer(x, file, `${field}.pretokenizers[${i}]`));
      return { fns: parts.flatMap((x) => x.fns), byteLevel: parts.some((x) => x.byteLevel) };
    }
    case 'ByteLevel': {
      const prefix = j.add_prefix_space === true;
      const useRegex = j.use_regex !== false;
      return {
        byteLevel: true,
        fns: [(s) => {
          const t = prefix && !s.startsWith(' ') ? ` ${s}` : s;
          const pieces = useRegex ? t.match(GPT2_SPLIT) ?? [] : [t];
          return pieces.map((w) => {
            let o = '';
            for (const b of new TextEncoder().encode(w)) o += BYTE_MAP.enc[b];
            return o;
          });
        }],
      };
    }
    case 'Metaspace': {
      const rep = typeof j.replacement === 'string' ? j.replacement : SP_SPACE;
      const scheme = j.prepend_scheme ?? (j.add_prefix_space === false ? 'never' : 'always');
      const split = j.split !== false;
      return {
        byteLevel: false,
        fns: [(s) => {
          let t = s.split(' ').join(rep);
          if (scheme !== 'never' && !t.startsWith(rep)) t = rep + t;
          if (!split) return [t];
          const out: string[] = [];
          let cur = '';
          for (const ch of t) {
            if (ch === rep && cur !== '') { out.push(cur); cur = ''; }
            cur += ch;
          }
          if (cur) out.push(cur);
          return out;
        }],
      };
    }
    default: unsup(file, `${field}.type`, `= ${JSON.stringify(j.type)} is not supported (supported: ByteLevel, Metaspace, Sequence)`);
  }
}

function parseDecoder(d: unknown, file: string, field: string): Decoder[] {
  if (d === null || d === undefined) return [];
  const j = d as Json;
  switch (j.type) {
    case 'Sequence': {
      if (!Array.isArray(j.decoders)) fail(file, `${field}.decoders`, 'must be a list');
      return (j.decoders as unknown[]).flatMap((x, i) => parseDecoder(x, file, `${field}.decoders[${i}]`));
    }
    case 'ByteLevel':
      return [(tokens) => {
        const bytes: number[] = [];
        for (const t of tokens) {
          for (const ch of t) {
            const b = BYTE_MAP.dec.get(ch);
            if (b !== undefined) bytes.push(b);
            else for (const x of new TextEncoder().encode(ch)) bytes.push(x);
          }
        }
        return [new TextDecoder('utf-8').decode(new Uint8Array(bytes))];
      }];
    case 'Replace': {
      const from = stringPattern(j.pattern, file, `${field}.pattern`);
      const to = j.content;
      if (typeof to !== 'string') fail(file, `${field}.content`, 'must be a string');
      return [(tokens) => tokens.map((t) => t.split(from).join(to))];
    }
    case 'ByteFallback':
      return [(tokens) => {
        const out: string[] = [];
        let pending: number[] = [];
        const flush = (): void => {
          if (!pending.length) return;
          try {
            out.push(new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(pending)));
          } catch {
            for (let i = 0; i < pending.length; i++) out.push('\ufffd');
          }
          pending = [];
        };
        for (const t of tokens) {
          const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(t);
          if (m) pending.push(parseInt(m[1], 16));
          else { flush(); out.push(t); }
        }
        flush();
        return out;
      }];
    case 'Fuse':
      return [(tokens) => [tokens.join('')]];
    case 'Strip': {
      const c = j.content;
      const start = j.start ?? 0, stop = j.stop ?? 0;
      if (typeof c !== 'string' || typeof start !== 'number' || typeof stop !== 'number') fail(file, field, 'Strip needs "content" (string), "start" and "stop" (integers)');
      return [(tokens) => tokens.map((t) => {
        let a = 0, b = t.length;
        for (let i = 0; i < start && t.startsWith(c, a); i++) a += c.length;
        for (let i = 0; i < stop && b - c.length >= a && t.startsWith(c, b - c.length); i++) b -= c.length;
        return t.slice(a, b);
      })];
    }
    case 'Metaspace': {
      const rep = typeof j.replacement === 'string' ? j.replacement : SP_SPACE;
      const scheme = j.prepend_scheme ?? (j.add_prefix_space === false ? 'never' : 'always');
      return [(tokens) => tokens.map((t, i) => {
        const s = t.split(rep).join(' ');
        return i === 0 && scheme !== 'never' && s.startsWith(' ') ? s.slice(1) : s;
      })];
    }
    default: unsup(file, `${field}.type`, `= ${JSON.stringify(j.type)} is not supported (supported: ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence)`);
  }
}

function parsePostProcessor(p: unknown, file: string, vocab: Map<string, number>): { prefix: number[]; suffix: number[] } {
  if (p === null || p === undefined) return { prefix: [], suffix: [] };
  const j = p as Json;
  if (j.type === 'ByteLevel') return { prefix: [], suffix: [] };
  if (j.type === 'Sequence' && Array.isArray(j.processors)) {
    const parts = (j.processors as unknown[]).map((x) => parsePostProcessor(x, file, vocab));
    return { prefix: parts.flatMap((x) => x.prefix), suffix: parts.flatMap((x) => x.suffix) };
  }
  if (j.type !== 'TemplateProcessing') unsup(file, 'post_processor.type', `= ${JSON.stringify(j.type)} is not supported (supported: TemplateProcessing, ByteLevel, Sequence)`);
  const single = j.single;
  if (!Array.isArray(single)) fail(file, 'post_processor.single', 'must be a list');
  const specials = (j.special_tokens ?? {}) as Record<string, { ids?: number[] }>;
  const prefix: number[] = [], suffix: number[] = [];
  let seenA = false;
  single.forEach((item, i) => {
    const it = item as Json;
    if (it.Sequence) { seenA = true; return; }
    const sp = it.SpecialToken as Json | undefined;
    if (!sp || typeof sp.id !== 'string') fail(file, `post_processor.single[${i}]`, 'must be {"Sequence": ...} or {"SpecialToken": {"id": ...}}');
    const ids = specials[sp.id]?.ids ?? (vocab.has(sp.id) ? [vocab.get(sp.id)!] : undefined);
    if (!ids) fail(file, `post_processor.single[${i}]`, `names special token ${JSON.stringify(sp.id)}, which is neither in special_tokens nor in the vocabulary`);
    (seenA ? suffix : prefix).push(...ids);
  });
  return { prefix, suffix };
}
