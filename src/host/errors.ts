// One error type for everything `burrow run` refuses or cannot do; the CLI prints its message as one line.
export class RunError extends Error {}
