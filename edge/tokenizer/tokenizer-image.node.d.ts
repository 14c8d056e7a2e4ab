/** The compiled tokenizer image (scripts/build-tokenizer.mjs). */
declare const image: ArrayBuffer;
export default image;
