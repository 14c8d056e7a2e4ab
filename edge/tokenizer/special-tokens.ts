/** Qwen3's added-token ids (docs/model.md#special-tokens); the template and the output parsers match these by id. */

export const ENDOFTEXT = 151643;
export const IM_START = 151644;
export const IM_END = 151645;
export const TOOL_CALL = 151657;
export const TOOL_CALL_END = 151658;
export const TOOL_RESPONSE = 151665;
export const TOOL_RESPONSE_END = 151666;
export const THINK = 151667;
export const THINK_END = 151668;

/** First added-token id; ids below it are byte-level BPE tokens. */
export const FIRST_ADDED_TOKEN_ID = ENDOFTEXT;
