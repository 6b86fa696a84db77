declare module "*.c" {
  const text: string;
  export default text;
}

declare module "*.h" {
  const source: string;
  export default source;
}
