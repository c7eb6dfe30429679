/** `edgekv bench <suite>`: STUB until the attention bench lands. */
export const command = {
  describe: 'run a benchmark suite (attention, cache)',
  async run(argv: string[]): Promise<number> {
    console.error(`edgekv bench: suite ${argv[0] ?? '(none)'} is not implemented yet`);
    return 2;
  },
};
