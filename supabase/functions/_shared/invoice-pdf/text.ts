// Text in any of India's scripts on the invoice: Latin (and the rupee sign) in DejaVu Sans through
// pdf-lib as before; Devanagari, Bengali, Tamil, Telugu, Kannada, Malayalam, Gujarati and
// Gurmukhi in Noto Sans of the script (./fonts, OFL), shaped by fontkit's OpenType layout (its
// Indic shaper: conjuncts, reordered and split vowel signs, GSUB, and GPOS mark offsets).
//
// A shaped run is drawn as two layers, the way scanned documents carry their text:
//   - what is seen: each glyph of the layout as its outline, at the position the layout gives
//     (exact whatever the shaping did; a PDF viewer needs no font for it);
//   - what is copied, searched and read aloud: the run's text in its own order, invisible (text
//     rendering mode 3), from a subset of the same font embedded in the PDF, each character as
//     its own glyph (so the ToUnicode map gives the characters back), stretched over the width of
//     the run.
// A shaped run's glyphs are not its characters (a conjunct is one glyph for three letters, the
// vowel sign of "कि" is drawn before its consonant), so drawing the glyphs as text would copy
// back scrambled text; the two layers give both the right picture and the right text.
import {
  beginText,
  endText,
  PDFDocument,
  type PDFFont,
  PDFHexString,
  type PDFPage,
  popGraphicsState,
  pushGraphicsState,
  type RGB,
  setCharacterSqueeze,
  setFontAndSize,
  setTextMatrix,
  setTextRenderingMode,
  showText,
  TextRenderingMode,
} from "npm:pdf-lib@1.17.1";
import fontkit from "./fontkit.ts";

/** The Indic scripts the invoice draws, each with its Unicode block and its Noto Sans font file. */
export const SCRIPTS = [
  { name: "Devanagari", from: 0x0900, to: 0x097f, file: "NotoSansDevanagari-Regular.ttf" },
  { name: "Bengali", from: 0x0980, to: 0x09ff, file: "NotoSansBengali-Regular.ttf" },
  { name: "Gurmukhi", from: 0x0a00, to: 0x0a7f, file: "NotoSansGurmukhi-Regular.ttf" },
  { name: "Gujarati", from: 0x0a80, to: 0x0aff, file: "NotoSansGujarati-Regular.ttf" },
  { name: "Tamil", from: 0x0b80, to: 0x0bff, file: "NotoSansTamil-Regular.ttf" },
  { name: "Telugu", from: 0x0c00, to: 0x0c7f, file: "NotoSansTelugu-Regular.ttf" },
  { name: "Kannada", from: 0x0c80, to: 0x0cff, file: "NotoSansKannada-Regular.ttf" },
  { name: "Malayalam", from: 0x0d00, to: 0x0d7f, file: "NotoSansMalayalam-Regular.ttf" },
] as const;

type ScriptName = typeof SCRIPTS[number]["name"];

// deno-lint-ignore no-explicit-any
type FkFont = any;
// deno-lint-ignore no-explicit-any
type FkGlyph = any;

const fontFiles = new Map<ScriptName, Promise<Uint8Array>>();
function fontBytes(script: ScriptName): Promise<Uint8Array> {
  const file = SCRIPTS.find((s) => s.name === script)!.file;
  if (!fontFiles.has(script)) {
    fontFiles.set(script, Deno.readFile(new URL(`./fonts/${file}`, import.meta.url)));
  }
  return fontFiles.get(script)!;
}

function scriptOf(cp: number): ScriptName | null {
  // The dandas (U+0964, U+0965) are in the Devanagari block and end sentences in several scripts.
  for (const s of SCRIPTS) if (cp >= s.from && cp <= s.to) return s.name;
  return null;
}

/** Joiners and marks that belong to the run they are in, whatever their block. */
const isJoiner = (cp: number) => cp === 0x200c || cp === 0x200d || cp === 0x25cc;

/** A piece of one line: Latin text in DejaVu, or a run shaped in one Indic script's font. */
type Piece =
  | { kind: "latin"; text: string }
  | {
    kind: "shaped";
    text: string;
    script: ScriptName;
    glyphs: FkGlyph[];
    positions: FkPosition[];
    unitsPerEm: number;
  };

interface FkPosition {
  xAdvance: number;
  yAdvance: number;
  xOffset: number;
  yOffset: number;
}

export interface DrawOptions {
  size: number;
  bold?: boolean;
  color: RGB;
}

/** Sets text of any of the scripts on pages of one document. */
export class TextSetter {
  /** Per Indic script the document uses: the font to shape with, and its subset embedded for the text layer. */
  private readonly scripts = new Map<ScriptName, { shaper: FkFont; embedded: PDFFont }>();

  private constructor(readonly regular: PDFFont, readonly bold: PDFFont) {}

  /** A setter with the Indic fonts the texts to be set need (each read, parsed and embedded once). */
  static async create(
    pdf: PDFDocument,
    regular: PDFFont,
    bold: PDFFont,
    texts: string[],
  ): Promise<TextSetter> {
    const setter = new TextSetter(regular, bold);
    const needed = new Set<ScriptName>();
    for (const t of texts) {
      for (const ch of t) {
        const s = scriptOf(ch.codePointAt(0)!);
        if (s) needed.add(s);
      }
    }
    for (const s of [...needed].sort()) {
      const bytes = await fontBytes(s);
      setter.scripts.set(s, {
        shaper: fontkit.create(bytes),
        embedded: await pdf.embedFont(bytes, { subset: true }),
      });
    }
    return setter;
  }

  /** The pieces of a text: maximal runs of one Indic script (with the spaces, digits and punctuation its font has), and Latin between. */
  pieces(text: string): Piece[] {
    const out: { script: ScriptName | null; text: string }[] = [];
    for (const ch of text.normalize("NFC")) {
      const cp = ch.codePointAt(0)!;
      let script = scriptOf(cp);
      const last = out[out.length - 1];
      if (script && !this.scripts.has(script)) script = null;
      if (!script && last?.script) {
        // A neutral character stays in the Indic run when its font draws it (space, digits, comma).
        const font = this.scripts.get(last.script)!.shaper;
        if (isJoiner(cp) || (!/\p{L}/u.test(ch) && font.hasGlyphForCodePoint(cp))) script = last.script;
      }
      if (last && last.script === script) last.text += ch;
      else out.push({ script, text: ch });
    }
    return out.map(({ script, text }) => {
      if (!script) return { kind: "latin", text } as Piece;
      const font = this.scripts.get(script)!.shaper;
      const run = font.layout(text);
      return {
        kind: "shaped",
        text,
        script,
        glyphs: run.glyphs,
        positions: run.positions,
        unitsPerEm: font.unitsPerEm,
      } as Piece;
    });
  }

  /** The width of a text at a size. */
  width(text: string, size: number, bold = false): number {
    let w = 0;
    for (const p of this.pieces(text)) w += this.pieceWidth(p, size, bold);
    return w;
  }

  private pieceWidth(p: Piece, size: number, bold: boolean): number {
    if (p.kind === "latin") return (bold ? this.bold : this.regular).widthOfTextAtSize(p.text, size);
    return p.positions.reduce((sum, pos) => sum + pos.xAdvance, 0) * size / p.unitsPerEm;
  }

  /** Draws a text at x, y (its baseline). */
  draw(page: PDFPage, text: string, x: number, y: number, o: DrawOptions): void {
    for (const p of this.pieces(text)) {
      const width = this.pieceWidth(p, o.size, o.bold ?? false);
      if (p.kind === "latin") {
        page.drawText(p.text, {
          x,
          y,
          size: o.size,
          font: o.bold ? this.bold : this.regular,
          color: o.color,
        });
      } else {
        this.drawShaped(page, p, x, y, width, o);
      }
      x += width;
    }
  }

  private drawShaped(
    page: PDFPage,
    p: Piece & { kind: "shaped" },
    x: number,
    y: number,
    width: number,
    o: DrawOptions,
  ) {
    const scale = o.size / p.unitsPerEm;
    // What is seen: the glyphs' outlines where the layout puts them.
    let pen = x;
    for (const [i, glyph] of p.glyphs.entries()) {
      const pos = p.positions[i];
      // fontkit's outline is in font units with y up; drawSvgPath reads SVG's y down, so flip it.
      const path = glyph.path.scale(1, -1).toSVG();
      if (path) {
        page.drawSvgPath(path, {
          x: pen + pos.xOffset * scale,
          y: y + pos.yOffset * scale,
          scale,
          color: o.color,
          borderWidth: 0,
        });
      }
      pen += pos.xAdvance * scale;
    }
    // What is copied: the characters in order, invisible, over the same width.
    const { shaper, embedded } = this.scripts.get(p.script)!;
    let hex = "";
    let natural = 0;
    for (const ch of p.text) {
      const glyph = shaper.glyphForCodePoint(ch.codePointAt(0)!);
      hex += includeGlyph(embedded, glyph, ch).toString(16).padStart(4, "0");
      natural += glyph.advanceWidth * scale;
    }
    const key = page.node.newFontDictionary(embedded.name, embedded.ref);
    page.pushOperators(
      pushGraphicsState(),
      beginText(),
      setTextRenderingMode(TextRenderingMode.Invisible),
      setFontAndSize(key, o.size),
      setCharacterSqueeze(natural > 0 ? Math.round((width / natural) * 10000) / 100 : 100),
      setTextMatrix(1, 0, 0, 1, x, y),
      showText(PDFHexString.of(hex)),
      endText(),
      popGraphicsState(),
    );
  }
}

/**
 * Puts a glyph into a pdf-lib font subset with the character it stands for (its ToUnicode
 * entry), and returns its id in the subset. pdf-lib's subset embedder fills these from the text it
 * lays out itself; the text layer's glyphs are chosen here (one per character, unshaped), so they
 * are added the same way by hand. A glyph keeps the first character it was given.
 */
function includeGlyph(font: PDFFont, glyph: FkGlyph, ch: string): number {
  // deno-lint-ignore no-explicit-any
  const f = font as any;
  const embedder = f.embedder;
  const known = embedder.glyphIdMap.get(glyph.id);
  if (known !== undefined) return known;
  const id: number = embedder.subset.includeGlyph(glyph.id);
  embedder.glyphs[id - 1] = {
    id: glyph.id,
    codePoints: [ch.codePointAt(0)!],
    advanceWidth: glyph.advanceWidth,
  };
  embedder.glyphIdMap.set(glyph.id, id);
  embedder.glyphCache.invalidate();
  f.modified = true;
  return id;
}
