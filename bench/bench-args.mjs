// What the benchmark scripts share: reading their `--name value` options and the median of their samples.

/** The value after `--name` in `argv`, or `fallback` when the option is not given. */
export const option = (argv, name, fallback) => (argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : fallback);

/** The middle sample (of an even number, the upper of the two in the middle). */
export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
