"""What the page shows: the comparison's words and numbers (`views`), its HTML (`html`) and CSS (`style`), the
fixed text and pre-computed gallery tab (`tabs`) and the GPU benchmark tab (`bench_tab`)."""
