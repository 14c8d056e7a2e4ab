// The compiled tokenizer image (scripts/build-tokenizer.mjs) as the Worker gets it: a Data module (wrangler.toml's
// [[rules]]), an ArrayBuffer uploaded with the script, so starting an isolate parses no JS for it. Node takes
// tokenizer-image.node.js instead (package.json "imports": "#qwen3-tokenizer-image").
import image from './generated/qwen3-tokenizer.bin';

export default image;
