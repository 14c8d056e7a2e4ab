// A response body passed through unchanged while its chunks and its end are observed: the response cache copies a
// streamed answer this way, and the app settles usage when a streamed body ends or its reader cancels it.

/**
 * The same bytes as `body`, reporting each chunk and, once, whether the body was read to its end (false: the
 * client cancelled it or it errored).
 */
export function tapBody(
  body: ReadableStream<Uint8Array>,
  onChunk: (chunk: Uint8Array) => void,
  onClose: (complete: boolean) => void,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let closed = false;
  const close = (complete: boolean) => {
    if (!closed) (closed = true), onClose(complete);
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
          close(true);
        } else {
          onChunk(value);
          controller.enqueue(value);
        }
      } catch (err) {
        controller.error(err);
        close(false);
      }
    },
    cancel(reason) {
      close(false);
      return reader.cancel(reason);
    },
  });
}
