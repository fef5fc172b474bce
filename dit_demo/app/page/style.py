"""The page's CSS (Gradio 6 takes it at launch): captioned tiles that wrap on a phone, crisp upscaled pixels,
tables whose headers never break mid-word, a chart that scales with the column, bold text in a complete face.
Colours come from Gradio's theme variables, so light and dark themes both read."""

CSS = """
/* Gradio's theme declares Source Sans Pro at 400 and 600 only, and its SourceSansPro-SemiBold.woff2 is a 5 KB
   subset whose few glyphs include small capitals for A, B, i: every bold text (600 or 700, which falls back to the
   600 face) read "NVIDIᴀ H100 80Gʙ HʙM3", "(Mɪʙ)". Gradio also ships the complete bold face: declare it for 700 and
   draw everything bold on our pages at 700. */
@font-face { font-family: 'Source Sans Pro'; font-weight: 700; font-style: normal;
  src: url('static/fonts/SourceSansPro/SourceSansPro-Bold.woff2') format('woff2'); }
.prose :is(h1, h2, h3, h4, h5, thead th, b, strong, summary) { font-weight: 700 !important; }
.dq-bold { font-weight: 700 !important; }  /* buttons whose labels have such capitals ("A is quantized") */
.dq-rows { display: flex; flex-direction: column; gap: 14px; }
.dq-row h4 { margin: 0 0 6px; font-size: 0.95rem; }
.dq-strip { display: flex; flex-wrap: wrap; gap: 10px; }
.dq-tile { margin: 0; flex: 0 1 176px; min-width: 0; }
.dq-tile img { display: block; width: 100%; height: auto; image-rendering: pixelated;
  border: 1px solid var(--border-color-primary, #ccc); background: #fff; }
.dq-tile figcaption { font-size: 0.82rem; line-height: 1.3; margin-top: 4px; overflow-wrap: anywhere; }
.dq-tile figcaption b { font-weight: 700; }
.dq-note { font-size: 0.85rem; margin: 4px 0 8px; }
.dq-swatch { display: inline-block; width: 0.9em; height: 0.9em; vertical-align: -0.1em;
  border: 1px solid var(--border-color-primary, #ccc); }
.dq-table-wrap { overflow-x: auto; max-width: 100%; }
.dq-table { border-collapse: collapse; font-size: 0.88rem; border: none !important; }
.dq-table th, .dq-table td { padding: 4px 10px; text-align: right; border: none !important;
  border-bottom: 1px solid var(--border-color-primary, #ddd) !important; }
.dq-table thead th { white-space: nowrap; font-weight: 700; }
.dq-wide thead th { white-space: normal; overflow-wrap: normal; vertical-align: bottom; }
.dq-table tbody th { text-align: left; font-weight: normal; min-width: 7em; }
.dq-chart svg { width: 100%; max-width: 440px; height: auto; display: block; }
.dq-chart text { fill: currentColor; font-family: inherit; }
.dq-chart .dq-guide { stroke: currentColor; stroke-dasharray: 4 3; opacity: 0.6; }
.dq-key { margin: 4px 0 8px; padding-left: 0; list-style: none; font-size: 0.85rem; max-width: 100%; }
.dq-key li { margin: 1px 0; overflow-wrap: anywhere; }
.dq-key b { display: inline-block; min-width: 1.1em; }
.dq-dot { display: inline-block; width: 0.7em; height: 0.7em; border-radius: 50%; margin-right: 4px; }
.dq-headline { margin: 4px 0 10px; padding-left: 1.2em; }
.dq-gpu { margin: 0 0 28px; }
.dq-gpu details { margin-top: 10px; }
.dq-gpu summary { cursor: pointer; font-weight: 700; }
.dq-grid { display: grid; gap: 4px; align-items: center; justify-content: start; margin: 6px 0 12px; }
.dq-grid img { display: block; width: 100%; height: auto; image-rendering: pixelated; }
.dq-grid-h { font-weight: 700; font-size: 0.8rem; text-align: center; line-height: 1.2; }
.dq-grid-r { font-size: 0.8rem; padding-right: 4px; }
.dq-verdicts { margin: 0; padding-left: 1.2em; }
.dq-images { display: flex; flex-wrap: wrap; gap: 12px; }
.dq-images figure { margin: 0; max-width: 100%; }
.dq-images img { max-width: 100%; height: auto; image-rendering: pixelated; }
.dq-example { margin: 0; max-width: 100%; }
.dq-example img { display: block; max-width: 100%; height: auto; border: 1px dashed var(--border-color-primary, #ccc); }
.dq-example figcaption { font-size: 0.82rem; margin-top: 4px; overflow-wrap: anywhere; }
@media (max-width: 640px) {
  .dq-tile { flex-basis: calc(50% - 5px); }
  .dq-table { font-size: 0.8rem; }
  .dq-table th, .dq-table td { padding: 3px 6px; }
  .dq-wide thead { display: none; }
  .dq-wide, .dq-wide tbody, .dq-wide tr { display: block; width: 100%; }
  .dq-wide tr { padding: 4px 0; border-bottom: 1px solid var(--border-color-primary, #ddd); }
  .dq-wide tbody th { display: block; border: none !important; padding: 0 0 2px; font-weight: 700; }
  .dq-wide td { display: inline-block; border: none !important; padding: 0 12px 0 0; text-align: left; }
  .dq-wide td::before { content: attr(data-label) ": "; opacity: 0.7; }
}
"""
