// What both bench pictures share: text escaping, a width estimate for text (no font metrics at
// hand: DejaVu Sans, what rsvg-convert and most browsers on Linux use for sans-serif, is wide, so
// the estimate errs wide), round axis ticks, and boxes to lay out and check against each other.

/** An axis-aligned box in SVG user units. */
export interface Box { x: number; y: number; width: number; height: number }

export const FONT = "DejaVu Sans, Verdana, sans-serif";

export function escapeText(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** Per-character advance in em, rounded up from DejaVu Sans's. */
function advance(char: string): number {
  if (/[0-9]/.test(char)) return 0.64;
  if (/[il.,:;'|!]/.test(char)) return 0.32;
  if (char === " ") return 0.32;
  if (/[mwMW—–]/.test(char)) return 0.98;
  if (/[A-Z]/.test(char)) return 0.74;
  if (/[ftrj()\[\]\/]/.test(char)) return 0.42;
  return 0.63;
}

/** Estimated width of `text` at `fontSize`, a little wider than drawn. */
export function textWidth(text: string, fontSize: number, bold = false): number {
  let em = 0;
  for (const char of text) em += advance(char);
  return em * fontSize * (bold ? 1.1 : 1);
}

/** The box a text element covers: `anchor` as in text-anchor, `y` the baseline. */
export function textBox(text: string, x: number, y: number, fontSize: number, anchor: "start" | "end" | "middle" = "start", bold = false): Box {
  const width = textWidth(text, fontSize, bold);
  const left = anchor === "start" ? x : anchor === "end" ? x - width : x - width / 2;
  // Ascent ~0.76 em, descent ~0.24 em.
  return { x: left, y: y - fontSize * 0.76, width, height: fontSize };
}

export function overlaps(a: Box, b: Box): boolean {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

export function inside(inner: Box, outer: Box): boolean {
  return inner.x >= outer.x && inner.y >= outer.y && inner.x + inner.width <= outer.x + outer.width && inner.y + inner.height <= outer.y + outer.height;
}

/** Round ticks from 0 to at least `max`: steps of 1, 2 or 5 × 10^k, about `count` of them. */
export function ticks(max: number, count = 6): number[] {
  if (!(max > 0)) return [0, 1];
  const rough = max / count;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough)!;
  const out: number[] = [];
  for (let value = 0; value < max + step * 0.999; value += step) out.push(Number(value.toFixed(6)));
  return out;
}

export function formatMs(ms: number, digits = 0): string {
  return `${ms.toFixed(digits)} ms`;
}

export function text(x: number, y: number, content: string, attributes: Record<string, string | number> = {}): string {
  const extra = Object.entries(attributes).map(([key, value]) => ` ${key}="${escapeText(String(value))}"`).join("");
  return `<text x="${round(x)}" y="${round(y)}"${extra}>${escapeText(content)}</text>`;
}

export function rect(box: Box, fill: string, attributes: Record<string, string | number> = {}): string {
  const extra = Object.entries(attributes).map(([key, value]) => ` ${key}="${escapeText(String(value))}"`).join("");
  return `<rect x="${round(box.x)}" y="${round(box.y)}" width="${round(Math.max(0, box.width))}" height="${round(box.height)}" fill="${fill}"${extra}/>`;
}

export function line(x1: number, y1: number, x2: number, y2: number, stroke: string, attributes: Record<string, string | number> = {}): string {
  const extra = Object.entries(attributes).map(([key, value]) => ` ${key}="${escapeText(String(value))}"`).join("");
  return `<line x1="${round(x1)}" y1="${round(y1)}" x2="${round(x2)}" y2="${round(y2)}" stroke="${stroke}"${extra}/>`;
}

export function round(value: number): string {
  return String(Math.round(value * 10) / 10);
}

export function document(width: number, height: number, body: string[], title: string): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${round(width)}" height="${round(height)}" viewBox="0 0 ${round(width)} ${round(height)}" font-family="${FONT}" font-size="12">`,
    `<title>${escapeText(title)}</title>`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...body,
    `</svg>`,
  ].join("\n") + "\n";
}

/** `content` broken at spaces into lines no wider than `width` (a single longer word stays whole). */
export function wrap(content: string, width: number, fontSize: number, bold = false): string[] {
  const lines: string[] = [];
  let current = "";
  for (const word of content.split(/\s+/).filter(Boolean)) {
    const next = current ? `${current} ${word}` : word;
    if (current && textWidth(next, fontSize, bold) > width) {
      lines.push(current);
      current = word;
    } else current = next;
  }
  if (current) lines.push(current);
  return lines;
}

/** SVG elements in drawing order, with the box of every text, so a test can check them all. */
export class Canvas {
  readonly body: string[] = [];
  readonly texts: Box[] = [];

  add(...elements: string[]): void {
    this.body.push(...elements);
  }

  /** `content` wrapped to `width`, one line every `lineHeight` from baseline `y`; returns the last baseline. */
  paragraph(x: number, y: number, content: string, width: number, lineHeight: number, attributes: Record<string, string | number> = {}): number {
    const lines = wrap(content, width, Number(attributes["font-size"] ?? 12), attributes["font-weight"] === "bold");
    lines.forEach((words, index) => this.text(x, y + index * lineHeight, words, attributes));
    return y + (lines.length - 1) * lineHeight;
  }

  /** A text element; `y` is the baseline. Its box uses font-size, text-anchor and font-weight. */
  text(x: number, y: number, content: string, attributes: Record<string, string | number> = {}): Box {
    const size = Number(attributes["font-size"] ?? 12);
    const anchor = (attributes["text-anchor"] ?? "start") as "start" | "end" | "middle";
    const box = textBox(content, x, y, size, anchor, attributes["font-weight"] === "bold");
    this.texts.push(box);
    this.body.push(text(x, y, content, attributes));
    return box;
  }
}
