export * from "./constants";
export * from "./errno";
export * from "./fs";
export * from "./proc";
export * from "./mem";
export * from "./socket";
export { errno, LIBC_SYMBOLS, prebind } from "./libc";
export * from "./random";
