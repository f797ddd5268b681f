// worker/model.mjs — the stand-in model: a deterministic answer, one word
// at a time, so the example needs no API key and its tests know exactly
// what a complete answer is (a repeated or missing word shows).
//
// answerTo(prompt, words) is the whole answer as a list of tokens; each
// token is a word and the space after it. The worker streams them with a
// pause between, as a model would.

const PASSAGE = (
  "Parley keeps every message and every token of the answer on disk before it says so " +
  "so a reload a lost connection or a restarted server never loses a word and never shows one twice " +
  "the answer you are reading streams from a worker that claimed this turn holds a lease on it " +
  "and appends each token exactly once with producer headers while the page follows the stream by offset"
).split(" ")

/** The tokens of the answer to `prompt`: an echo, then `words` words of the passage, numbered. */
export function answerTo(prompt, words = 48) {
  const echo = String(prompt).replace(/\s+/g, " ").trim().slice(0, 80)
  const out = [`You said: "${echo}". `]
  for (let i = 0; i < words; i++) out.push(`${PASSAGE[i % PASSAGE.length]}(${i + 1}) `)
  return out
}
