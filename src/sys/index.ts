export * from "./constants";
export * from "./errno";
export * from "./fs";
export * from "./proc";
export * from "./mem";
export * from "./socket";
export { errno, prebind } from "./libc";
export * from "./random";
