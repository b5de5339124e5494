/** The value after `--name` on the command line, if the flag is there (the benchmarks' own flags). */
export function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? undefined : process.argv[i + 1];
}
