// What the benchmark scripts share: reading their `--name value` options and the median of their samples.

/** The value after `--name` in `argv` (the script's own arguments by default), or `fallback` when it is not given. */
export const option = (name, fallback, argv = process.argv.slice(2)) => (argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : fallback);

/** The middle sample (of an even number, the upper of the two in the middle). */
export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
