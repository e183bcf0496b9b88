//! Writes small, valid PDFs for deck tests: one page of large text per
//! entry (standard Helvetica, so any reader renders it).

/// A PDF with one page per string; each page shows its string.
pub fn pages(texts: &[&str]) -> Vec<u8> {
    let streams: Vec<String> = texts
        .iter()
        .map(|text| {
            let escaped = text
                .replace('\\', "\\\\")
                .replace('(', "\\(")
                .replace(')', "\\)");
            format!("BT /F1 36 Tf 60 300 Td ({escaped}) Tj ET")
        })
        .collect();
    build(&streams)
}

/// A PDF with one page per content stream.
fn build(streams: &[String]) -> Vec<u8> {
    let n = streams.len();
    // objects: 1 catalog, 2 pages, 3 font, then per page: page, contents
    let mut objects: Vec<String> = Vec::new();
    objects.push("<< /Type /Catalog /Pages 2 0 R >>".to_owned());
    let kids: Vec<String> = (0..n).map(|i| format!("{} 0 R", 4 + 2 * i)).collect();
    objects.push(format!(
        "<< /Type /Pages /Kids [{}] /Count {n} >>",
        kids.join(" ")
    ));
    objects.push("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned());
    for (i, stream) in streams.iter().enumerate() {
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 960 540] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            5 + 2 * i
        ));
        objects.push(format!(
            "<< /Length {} >>\nstream\n{stream}\nendstream",
            stream.len()
        ));
    }
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// A 16:9 PDF whose pages are filled with one colour each (RGB in 0..=1),
/// with the page number in black: slides a test can tell apart by pixel.
pub fn colored_pages(colors: &[(f32, f32, f32)]) -> Vec<u8> {
    let streams: Vec<String> = colors
        .iter()
        .enumerate()
        .map(|(i, (r, g, b))| {
            format!("{r:.3} {g:.3} {b:.3} rg 0 0 960 540 re f 0 0 0 rg BT /F1 36 Tf 40 480 Td (Slide {}) Tj ET", i + 1)
        })
        .collect();
    build(&streams)
}
