/** Why `burrow image` cannot build what was asked: one line for the command line, naming the path. */
export class ImageError extends Error {}
