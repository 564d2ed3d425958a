// Shows which Unicode version each character class of Hugging Face
// tokenizers follows, by asking the npm tokenizers addon about every code
// point and comparing with the Unicode 16.0 and 17.0 data. This is how
// gen.mjs's choices were made; rerun it when the reference tokenizers
// version changes. Takes about two minutes.
//
// usage: (cd scripts/tokenizer-golden && npm install) && node scripts/unicode-tables/check.mjs
import fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../tokenizer-golden/', import.meta.url));
const { Tokenizer, byteLevelPreTokenizer, digitsPreTokenizer } = require('tokenizers');
const flagsPath = new URL('../../internal/tokenizer/testdata/flags_tokenizer.json', import.meta.url);

async function set(version, props) {
  const s = new Set();
  for (const p of props) {
    for (const r of (await import(`@unicode/unicode-${version}/${p}/ranges.mjs`)).default) {
      for (let c = r.begin; c < r.end; c++) s.add(c);
    }
  }
  return s;
}

const all = [];
for (let c = 0; c < 0x110000; c++) if ((c < 0xd800 || c > 0xdfff) && c !== 0x0a) all.push(c);
const chunks = (n) => Array.from({ length: Math.ceil(all.length / n) }, (_, i) => all.slice(i * n, (i + 1) * n));

// ByteLevel regex: "a"+X, "1"+X and "!"+X stay one piece when X is a
// letter, a number, or neither (and not space).
const letter = new Set(), number = new Set();
const bl = byteLevelPreTokenizer(false, true);
for (const cps of chunks(2048)) {
  let s = '';
  for (const c of cps) {
    const x = String.fromCodePoint(c);
    s += `a${x}\n1${x}\n!${x}\n`;
  }
  const groups = [[]];
  for (const [p] of bl.preTokenizeString(s)) {
    if (p === 'Ċ') groups.push([]);
    else groups[groups.length - 1].push(p);
  }
  cps.forEach((c, i) => {
    if (groups[3 * i].length === 1) letter.add(c);
    else if (groups[3 * i + 1].length === 1) number.add(c);
  });
}

// Digits (individual): a numeric X is a piece of its own.
const numeric = new Set();
const dg = digitsPreTokenizer(true);
for (const cps of chunks(4096)) {
  const s = 'a' + cps.map((c) => String.fromCodePoint(c) + 'a').join('');
  for (const [p] of dg.preTokenizeString(s)) {
    if (p !== 'a' && [...p].length === 1) numeric.add(p.codePointAt(0));
  }
}

// single_word: X+"word" keeps the added token "word" only when X is not a
// word character. Only code points whose class differs between versions
// are asked (one encode each).
const wordProps = ['Binary_Property/Alphabetic', 'General_Category/Mark', 'General_Category/Decimal_Number',
  'General_Category/Connector_Punctuation', 'Binary_Property/Join_Control'];
const flags = JSON.parse(fs.readFileSync(flagsPath, 'utf8'));
const tok = Tokenizer.fromString(JSON.stringify(flags));
const wordID = flags.added_tokens.find((t) => t.content === 'word' && t.single_word).id;

const versions = ['16.0.0', '17.0.0'];
for (const v of versions) {
  const L = await set(v, ['General_Category/Letter']);
  const N = await set(v, ['General_Category/Number']);
  const mismatch = (got, want) => all.filter((c) => got.has(c) !== want.has(c)).length;
  console.log(`Unicode ${v}: ByteLevel \\p{L} ${mismatch(letter, L)} mismatches, \\p{N} ${mismatch(number, N)}, Digits ${mismatch(numeric, N)}`);
}
const W = await Promise.all(versions.map((v) => set(v, wordProps)));
const differ = [...new Set([...W[0], ...W[1]])].filter((c) => W[0].has(c) !== W[1].has(c));
const bad = [0, 0];
for (const c of differ) {
  const ids = Array.from((await tok.encode(String.fromCodePoint(c) + 'word', null, { addSpecialTokens: false })).getIds());
  const isWord = !ids.includes(wordID);
  W.forEach((w, i) => { if (w.has(c) !== isWord) bad[i]++; });
}
versions.forEach((v, i) => console.log(`Unicode ${v}: single_word \\w ${bad[i]} mismatches of ${differ.length} code points that differ between the versions`));
