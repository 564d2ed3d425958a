// Writes the golden fixtures of internal/tokenizer with the official Hugging
// Face tokenizers (Rust, as the npm addon tokenizers@0.23.2). Run through
// regen.sh, which installs the package and builds the tiny tokenizer first.
//
// usage: node gen.js SMOLVLM_TOKENIZER_JSON TESTDATA_DIR
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('tokenizers');

const [smolPath, outDir] = process.argv.slice(2);
if (!smolPath || !outDir) {
  console.error('usage: node gen.js SMOLVLM_TOKENIZER_JSON TESTDATA_DIR');
  process.exit(2);
}
const version = require('tokenizers/package.json').version;

// mulberry32: a tiny seeded PRNG so the random strings are reproducible.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const F = '<fake_token_around_image>', G = '<global-img>', I = '<image>';
function expand(rows, cols, n) {
  if (rows === 0) return F + G + I.repeat(n) + F;
  let s = '';
  for (let r = 1; r <= rows; r++) {
    for (let c = 1; c <= cols; c++) s += F + `<row_${r}_col_${c}>` + I.repeat(n);
    s += '\n';
  }
  return s + '\n' + F + G + I.repeat(n) + F;
}
const q = 'Can you describe this image?';
const prompts = [
  `<|im_start|>User:${expand(4, 4, 64)}${q}<end_of_utterance>\nAssistant:`,
  `<|im_start|>User:${expand(0, 0, 64)}${q}<end_of_utterance>\nAssistant:`,
  `<|im_start|>User:${expand(2, 4, 64)}${q}<end_of_utterance>\nAssistant:`,
  `<|im_start|>User:${expand(1, 1, 64)}${q}<end_of_utterance>\nAssistant:`,
  `<|im_start|>User:${expand(4, 4, 81)}${q}<end_of_utterance>\nAssistant:`,
  `<|im_start|>User: ${q}<end_of_utterance>\nAssistant:`,
  `<|im_start|>User: ${q}<image><end_of_utterance>\nAssistant:`,
  '<|im_start|>User:<image><image>Compare.<end_of_utterance>\nAssistant:  They differ.<end_of_utterance>\nUser: Why?<end_of_utterance>\nAssistant:',
  '<|im_start|>User: <video>Describe this video in detail<end_of_utterance>\nAssistant:',
  '<|im_start|>User: What do these images show?<image><image><end_of_utterance>\nAssistant: The first image shows the statue of Liberty in New York. The second image picture depicts Idefix, the dog of Obelix in Asterix and Obelix.<end_of_utterance>\nUser: And who is that?<end_of_utterance>\nAssistant:',
  '<image>In this image, we see',
];

const fixed = [
  '', ' ', '  ', '   ', '\n', '\n\n', '\n\n\n', '\r\n', '\r\n\r\n', '\t', '\t\t', ' \t\n', 'a\n\nb', 'a \n\n b',
  'hello', 'Hello world', ' Hello', 'Hello  world', 'Hello   world ', 'end.  ', 'tab\tseparated\tvalues',
  "it's", "It's", "IT'S", "we're", "WE'RE", "they'll", "THEY'LL", "I've", "I'm", "he'd", "don't", "DON'T",
  "'s", "'S", "''s", " 's", "rock 'n' roll", "o'clock", "y'all're", "'ll've", "'re'", "'", "''",
  '123', '1234567890', ' 42', 'x1y2z3', '3.14159', '1,000,000', '٣٤٥', '१२३', '½ ¼', 'Ⅻ', '①②', '２０２４',
  'café', 'naïve', 'Å', 'e\u0301', 'n\u0303o', 'a\u0300\u0301\u0302', '\u0301start', 'ﬁ ligature',
  '日本語', '日本語のテキスト', '中文，标点。', '한국어', 'Русский текст', 'Ελληνικά', 'עברית', 'العربية', 'مرحبا بالعالم', 'हिन्दी', 'ไทย',
  '🙂', '👍🏽', '👩‍👩‍👧‍👦', '🧑🏻‍💻', '🏳️‍🌈', '🇫🇷🇩🇪', '❤️', 'a🙂b', ' 🙂', '🙂 🙂', '\u200d', '\ufeffBOM', 'zero\u200bwidth',
  '\u00a0nbsp', 'a\u00a0b', 'a\u2003b', 'a\u3000b', '\u3000\u3000x', 'a\u0085b', 'a\u2028b', 'a\u180eb', 'a\u000bb', 'a\u000cb', '\u2003 x',
  'func main() {\n\tfmt.Println("hi")\n}\n', 'def f(x):\n    return x**2\n', '    indented', 'if (a && b) { return; }',
  '<html><body>hi</body></html>', 'x = {"a": [1, 2]}', 'C:\\path\\to\\file.txt', 'https://huggingface.co/HuggingFaceTB/SmolVLM-256M-Instruct',
  '#!/bin/sh\necho $HOME', '$$$ !!! ???', '...', '—–-', '«quote»', '“smart”', '¿Qué?', '¡Hola!',
  '<image>', '<image>Can', 'User:<image>', '<row_1_col_1><image><image>', '<imag', '<image', 'image>', '<<image>>', '<image><imag', '< image>',
  '<fake_token_around_image>', '<global-img>', '<row_6_col_6>', '<row_7_col_7>', '<row_1_col_1', '<end_of_utterance>', '<end_of_utterance>\n',
  '<|im_start|>', '<|im_end|>', '<|endoftext|>', '<|im_start|>User', '<|im_start', '|im_start|>', '<|reserved_special_token_0|>',
  '<|reserved_special_token_87|>', '<|reserved_special_token_88|>', '<repo_name>x<file_sep>y', '<empty_output>', '<jupyter_code>print(1)',
  ' <image> ', 'a<image>b', 'a <image> b', '\n<image>\n', '<image>\n\n<image>', '<video>', '<Image>', '<IMAGE>',
  'Assistant:', 'User: hi', 'Assistant: The image shows a cat.', 'System: You are helpful.',
];

// Code points whose letter, number, mark or alphabetic class changed after
// Unicode 15.0 (Go's unicode tables) up to 16.0/17.0: CJK Extension I,
// Egyptian Hieroglyphs Extended-A, Garay, Kirat Rai, Tolong Siki digits, …
// (the difference of the @unicode/unicode-* data; scripts/unicode-tables).
// The last two are letters only since 17.0, which tokenizers does not use.
const sinceUnicode15 = [
  [0x363, 0x36f], [0x897, 0x897], [0x1c89, 0x1c8a], [0x1dd3, 0x1de6], [0xa7cb, 0xa7cd], [0xa7da, 0xa7dc], [0x105c0, 0x105f3],
  [0x10d40, 0x10d65], [0x10d69, 0x10d6d], [0x10d6f, 0x10d85], [0x10ec2, 0x10ec4], [0x10efc, 0x10efc], [0x11380, 0x11389],
  [0x1138b, 0x1138b], [0x1138e, 0x1138e], [0x11390, 0x113b5], [0x113b7, 0x113c0], [0x113c2, 0x113c2], [0x113c5, 0x113c5],
  [0x113c7, 0x113ca], [0x113cc, 0x113d3], [0x113e1, 0x113e2], [0x116d0, 0x116e3], [0x11bc0, 0x11be0], [0x11bf0, 0x11bf9],
  [0x11de0, 0x11de9], [0x11f5a, 0x11f5a], [0x13460, 0x143fa], [0x16100, 0x16139], [0x16d40, 0x16d6c], [0x16d70, 0x16d79],
  [0x16ff4, 0x16ff6], [0x18cff, 0x18cff], [0x1ccf0, 0x1ccf9], [0x1e5d0, 0x1e5fa], [0x2ebf0, 0x2ee5d],
  [0xa7ce, 0xa7cf], [0x323b0, 0x323bf],
];

function newCodePoint(r) {
  const [lo, hi] = sinceUnicode15[Math.floor(r() * sinceUnicode15.length)];
  return String.fromCodePoint(lo + Math.floor(r() * (hi - lo + 1)));
}

// unicodeStrings put the code points above next to what the pre-tokenizers
// split on: contractions ('ll, 's), ASCII letters and digits, spaces,
// punctuation. The first ones are the cases HF and Go (Unicode 15.0 tables)
// disagreed on.
function unicodeStrings(seed, n) {
  const out = [];
  const picks = [0x14150, 0x2ede6, 0x2ebf0, 0x10d4a, 0x10d40, 0x11de0, 0x16d70, 0x1c89, 0xa7cb, 0x363, 0x323b0, 0xa7ce];
  for (const cp of picks) {
    const x = String.fromCodePoint(cp);
    out.push(x + "'ll", x + "'s", 'a' + x + "'s", ' ' + x + x, '1' + x + '2', x + '!', 'word' + x, x + 'word');
  }
  const r = rng(seed);
  const parts = ["'ll", "'s", "'re", 'a', 'Z', 'é', '日', '1', '٣', ' ', '  ', '\n', '!', '.', '_', '\u0301', 'word'];
  for (let i = 0; i < n; i++) {
    let s = '';
    const len = 1 + Math.floor(r() * 12);
    for (let k = 0; k < len; k++) s += r() < 0.5 ? newCodePoint(r) : parts[Math.floor(r() * parts.length)];
    out.push(s);
  }
  return out;
}

function randomString(r) {
  const pools = [
    'abcdefghijklmnopqrstuvwxyz', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', '0123456789', '       ', '\n\n\t\r',
    ".,;:!?'\"()[]{}<>-_/\\|@#$%^&*+=~`", 'éèêëàâäôöûüçñßøåæœ', '日本語中文字漢한글', 'абвгдежзийклмн', 'ابتثجحخدذرزسشص',
    '\u0300\u0301\u0303\u0308\u0327', '\u00a0\u2003\u3000\u0085\u2028\u200b\u200d\ufe0f',
  ];
  const emoji = ['🙂', '👍', '🏽', '👩', '👧', '🐱', '🚣', '♀', '🇫', '🇷', '❤'];
  const specials = ['<image>', '<imag', '<row_1_col_1>', '<|im_start|>', '<end_of_utterance>', '<fake_token_around_image>', '<global-img>', '<', '>', "'s", "'ll", "'re", "'d"];
  const n = 1 + Math.floor(r() * 40);
  let s = '';
  for (let i = 0; i < n; i++) {
    const k = r();
    if (k < 0.05) s += specials[Math.floor(r() * specials.length)];
    else if (k < 0.1) s += emoji[Math.floor(r() * emoji.length)];
    else {
      const pool = Array.from(pools[Math.floor(r() * pools.length)]);
      s += pool[Math.floor(r() * pool.length)];
    }
  }
  return s;
}

function longRandom(r) {
  const words = ['the', 'image', 'shows', 'a', 'cat', 'on', 'table', '42', "it's", 'naïve', '日本', '🙂', '\n', '\n\n', '  ', ',', '.', '<image>', 'Hello', 'WORLD'];
  let s = '';
  const n = 50 + Math.floor(r() * 150);
  for (let i = 0; i < n; i++) s += (r() < 0.7 ? ' ' : '') + words[Math.floor(r() * words.length)];
  return s;
}

function buildStrings(seed, nRandom, nLong) {
  const r = rng(seed);
  const out = [...prompts, ...fixed];
  // Pairwise glue of short fixed strings exercises boundaries.
  const short = fixed.filter((s) => s.length > 0 && s.length < 12);
  for (let i = 0; i < 300; i++) out.push(short[Math.floor(r() * short.length)] + short[Math.floor(r() * short.length)]);
  for (let i = 0; i < nRandom; i++) out.push(randomString(r));
  for (let i = 0; i < nLong; i++) out.push(longRandom(r));
  // Appended last (own seed) so that the strings above stay as they were.
  return out.concat(unicodeStrings(seed + 100, 300));
}

// Random id sequences check Decode on byte fragments (invalid UTF-8).
function randomIDs(r, vocabSize, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const len = 1 + Math.floor(r() * 12);
    const ids = [];
    for (let j = 0; j < len; j++) {
      const k = r();
      if (k < 0.5) ids.push(Math.floor(r() * 300));
      else if (k < 0.6) ids.push(vocabSize - 1 - Math.floor(r() * 140));
      else ids.push(Math.floor(r() * vocabSize));
    }
    out.push(ids);
  }
  return out;
}

async function golden(tok, name, strings, idSeqs, file) {
  const cases = [];
  for (const text of strings) {
    const e = await tok.encode(text, null, { addSpecialTokens: false });
    const ids = Array.from(e.getIds());
    cases.push({ text, ids, decoded: await tok.decode(ids, false), decoded_skip: await tok.decode(ids, true) });
  }
  const decodes = [];
  for (const ids of idSeqs) {
    decodes.push({ ids, decoded: await tok.decode(ids, false), decoded_skip: await tok.decode(ids, true) });
  }
  const doc = {
    generator: `scripts/tokenizer-golden/gen.js with tokenizers@${version} (npm)`,
    tokenizer: name,
    cases,
    decodes,
  };
  // One case per line keeps diffs readable.
  const lines = [
    '{',
    `"generator": ${JSON.stringify(doc.generator)},`,
    `"tokenizer": ${JSON.stringify(doc.tokenizer)},`,
    '"cases": [',
    cases.map((c) => JSON.stringify(c)).join(',\n'),
    '],',
    '"decodes": [',
    decodes.map((c) => JSON.stringify(c)).join(',\n'),
    ']',
    '}',
    '',
  ];
  fs.writeFileSync(path.join(outDir, file), lines.join('\n'));
  console.log(`${file}: ${cases.length} strings, ${decodes.length} id sequences`);
}

// flagsVariant adds tokens that exercise the added-token flags to the tiny
// tokenizer: lstrip, rstrip, single_word, normalized and non-special tokens.
function flagsVariant(tiny) {
  const j = JSON.parse(tiny);
  let next = Math.max(...j.added_tokens.map((t) => t.id)) + 1;
  const add = (content, o) => j.added_tokens.push(Object.assign({ id: next++, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: false }, o));
  add('<L>', { lstrip: true, special: true });
  add('<R>', { rstrip: true, special: true });
  add('<LR>', { lstrip: true, rstrip: true });
  add('word', { single_word: true });
  add('cat', { single_word: true, normalized: true });
  add('hey', { normalized: true });
  add(' x', {});
  add('ü', { normalized: true });
  add('é', { special: true });
  add('日本', {});
  add('éé', {});
  add('<image>', { special: true }); // duplicate of an existing token
  return JSON.stringify(j);
}

function flagsStrings(seed, n) {
  const r = rng(seed);
  const parts = ['<L>', '<R>', '<LR>', 'word', 'words', 'sword', 'cat', 'cats', 'hey', 'they', ' x', 'x', 'ü', 'é', 'éé', 'ééé', '日本', '日本語',
    ' ', '  ', '\n', '\t', '\u3000', 'a', 'b', '_', '1', '.', '<image>', '<L', 'R>', "'s"];
  const out = ['a <L>  x y', 'a<L> x', 'a  <R>  b', ' <LR> ', 'word', 'a word b', 'aword', 'word_', '_word', 'word1', 'cat cat', 'catcat'];
  for (let i = 0; i < n; i++) {
    let s = '';
    const len = 1 + Math.floor(r() * 10);
    for (let k = 0; k < len; k++) s += parts[Math.floor(r() * parts.length)];
    out.push(s);
  }
  return out.concat(unicodeStrings(seed + 100, 100));
}

// splitPreTokenizer is a pre-tokenizer with a Split step of the given
// behavior, then Digits (contiguous) and ByteLevel with a prefix space and
// without the regex. The Go test puts it into the tiny tokenizer.
function splitPreTokenizer(behavior, pattern, invert) {
  return {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern, behavior, invert },
      { type: 'Digits', individual_digits: false },
      { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: false },
    ],
  };
}

// modelVariant changes the tiny tokenizer's BPE options. Single-byte tokens
// that no merge uses are renamed (ids unchanged): half to "<0xXX>" so that
// byte_fallback can find them, half to "<gone_XX>" so that only unk_token
// can stand for them.
function modelVariant(tinyText, opts) {
  const j = JSON.parse(tinyText);
  const used = new Set();
  for (const [a, b] of j.model.merges) {
    used.add(a);
    used.add(b);
  }
  const byteChar = (b) => {
    // GPT-2 bytes_to_unicode
    const printable = (x) => (x >= 0x21 && x <= 0x7e) || (x >= 0xa1 && x <= 0xac) || x >= 0xae;
    if (printable(b)) return String.fromCodePoint(b);
    let n = 0;
    for (let x = 0; x < b; x++) if (!printable(x)) n++;
    return String.fromCodePoint(256 + n);
  };
  let k = 0;
  for (let b = 0x80; b < 0x100; b++) {
    const c = byteChar(b);
    if (used.has(c) || !(c in j.model.vocab)) continue;
    const id = j.model.vocab[c];
    delete j.model.vocab[c];
    const hex = b.toString(16).toUpperCase().padStart(2, '0');
    j.model.vocab[k++ % 2 === 0 ? `<0x${hex}>` : `<gone_${hex}>`] = id;
  }
  Object.assign(j.model, opts);
  return j.model;
}

(async () => {
  const smol = Tokenizer.fromFile(smolPath);
  await golden(smol, 'SmolVLM-256M-Instruct tokenizer.json', buildStrings(1, 1500, 120), randomIDs(rng(2), 49280, 300), 'golden_smolvlm.json');

  const tinyText = fs.readFileSync(path.join(outDir, 'tiny_tokenizer.json'), 'utf8');
  const tinyVocab = Math.max(...JSON.parse(tinyText).added_tokens.map((t) => t.id)) + 1;
  await golden(Tokenizer.fromString(tinyText), 'testdata/tiny_tokenizer.json', buildStrings(3, 1500, 60), randomIDs(rng(4), tinyVocab, 200), 'golden_tiny.json');

  const flags = flagsVariant(tinyText);
  fs.writeFileSync(path.join(outDir, 'flags_tokenizer.json'), flags + '\n');
  await golden(Tokenizer.fromString(flags), 'testdata/flags_tokenizer.json', flagsStrings(5, 600), randomIDs(rng(6), tinyVocab + 12, 50), 'golden_flags.json');

  const variants = [
    ['Removed', { String: ' ' }, false],
    ['Isolated', { Regex: '[,.!?]' }, false],
    ['MergedWithPrevious', { String: ',' }, false],
    ['MergedWithNext', { Regex: '[A-Z]' }, false],
    ['Contiguous', { Regex: '[aeiou]' }, false],
    ['Removed', { Regex: '[aeiou]+' }, true],
  ];
  const r = rng(7);
  const splitStrings = [...fixed];
  for (let i = 0; i < 100; i++) splitStrings.push(randomString(r));
  splitStrings.push(...unicodeStrings(107, 100));
  const doc = [];
  for (const [beh, pat, inv] of variants) {
    const pre = splitPreTokenizer(beh, pat, inv);
    const j = JSON.parse(tinyText);
    j.pre_tokenizer = pre;
    const tok = Tokenizer.fromString(JSON.stringify(j));
    const cases = [];
    for (const text of splitStrings) {
      const e = await tok.encode(text, null, { addSpecialTokens: false });
      cases.push({ text, ids: Array.from(e.getIds()) });
    }
    doc.push(`{"pre_tokenizer": ${JSON.stringify(pre)},\n"cases": [\n${cases.map((c) => JSON.stringify(c)).join(',\n')}\n]}`);
  }
  fs.writeFileSync(path.join(outDir, 'golden_split.json'),
    `{"generator": "scripts/tokenizer-golden/gen.js with tokenizers@${version} (npm)",\n"tokenizer": "testdata/tiny_tokenizer.json with pre_tokenizer replaced",\n"variants": [\n${doc.join(',\n')}\n]}\n`);
  console.log(`golden_split.json: ${variants.length} pre-tokenizers x ${splitStrings.length} strings`);

  // BPE options: unk_token, fuse_unk, byte_fallback, ignore_merges.
  const modelVariants = [
    { unk_token: '<|endoftext|>' },
    { unk_token: '<|endoftext|>', fuse_unk: true },
    { unk_token: '<|endoftext|>', byte_fallback: true },
    { byte_fallback: true },
    { ignore_merges: true },
  ];
  // Strings of arbitrary non-ASCII runes reach the renamed byte tokens in
  // every order (unk then fallback, fallback then unk, …).
  const r2 = rng(8);
  const modelStrings = [...splitStrings];
  for (let i = 0; i < 200; i++) {
    let s = '';
    const n = 1 + Math.floor(r2() * 6);
    for (let k = 0; k < n; k++) s += r2() < 0.2 ? ' ' : String.fromCodePoint(0xa0 + Math.floor(r2() * 0x2f00));
    modelStrings.push(s);
  }
  const mdoc = [];
  for (const opts of modelVariants) {
    const model = modelVariant(tinyText, opts);
    const j = JSON.parse(tinyText);
    j.model = model;
    const tok = Tokenizer.fromString(JSON.stringify(j));
    const cases = [];
    for (const text of modelStrings) {
      const e = await tok.encode(text, null, { addSpecialTokens: false });
      const ids = Array.from(e.getIds());
      cases.push({ text, ids, decoded: await tok.decode(ids, false), decoded_skip: await tok.decode(ids, true) });
    }
    mdoc.push(`{"options": ${JSON.stringify(opts)},\n"model": ${JSON.stringify(model)},\n"cases": [\n${cases.map((c) => JSON.stringify(c)).join(',\n')}\n]}`);
  }
  fs.writeFileSync(path.join(outDir, 'golden_model.json'),
    `{"generator": "scripts/tokenizer-golden/gen.js with tokenizers@${version} (npm)",\n"tokenizer": "testdata/tiny_tokenizer.json with model replaced",\n"variants": [\n${mdoc.join(',\n')}\n]}\n`);
  console.log(`golden_model.json: ${modelVariants.length} models x ${modelStrings.length} strings`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
