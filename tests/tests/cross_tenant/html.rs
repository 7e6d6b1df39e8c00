//! Just enough HTML reading for a crawler: the tags of a server-rendered page with their
//! attributes (entities decoded), the links they point at and the forms with their fields.

/// A start or end tag.
#[derive(Debug)]
pub struct Tag {
    pub name: String,
    pub end: bool,
    attributes: Vec<(String, String)>,
}

impl Tag {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn has(&self, name: &str) -> bool {
        self.attributes.iter().any(|(n, _)| n == name)
    }
}

/// The tags of `html`, in order; comments, doctypes and the insides of scripts are skipped.
pub fn tags(html: &str) -> Vec<Tag> {
    let bytes = html.as_bytes();
    let mut tags = Vec::new();
    let mut at = 0;
    while let Some(found) = html[at..].find('<') {
        at += found + 1;
        if html[at..].starts_with("!--") {
            at = html[at..]
                .find("-->")
                .map_or(html.len(), |end| at + end + 3);
            continue;
        }
        if html[at..].starts_with('!') || html[at..].starts_with('?') {
            at = html[at..].find('>').map_or(html.len(), |end| at + end + 1);
            continue;
        }
        let end = html[at..].starts_with('/');
        if end {
            at += 1;
        }
        let name_len = html[at..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(html.len() - at);
        if name_len == 0 {
            continue;
        }
        let name = html[at..at + name_len].to_ascii_lowercase();
        at += name_len;
        let mut attributes = Vec::new();
        loop {
            while at < bytes.len() && (bytes[at].is_ascii_whitespace() || bytes[at] == b'/') {
                at += 1;
            }
            if at >= bytes.len() || bytes[at] == b'>' {
                at += 1;
                break;
            }
            let name_len = html[at..]
                .find(|c: char| c.is_ascii_whitespace() || c == '=' || c == '>' || c == '/')
                .unwrap_or(html.len() - at);
            let attribute = html[at..at + name_len].to_ascii_lowercase();
            at += name_len.max(1);
            let mut value = String::new();
            if at < bytes.len() && bytes[at] == b'=' {
                at += 1;
                match bytes.get(at) {
                    Some(&quote @ (b'"' | b'\'')) => {
                        let close = html[at + 1..]
                            .find(char::from(quote))
                            .map_or(html.len(), |i| at + 1 + i);
                        value = decode(&html[at + 1..close]);
                        at = close + 1;
                    }
                    _ => {
                        let len = html[at..]
                            .find(|c: char| c.is_ascii_whitespace() || c == '>')
                            .unwrap_or(html.len() - at);
                        value = decode(&html[at..at + len]);
                        at += len;
                    }
                }
            }
            attributes.push((attribute, value));
        }
        at = at.min(html.len());
        if name == "script" && !end {
            at = html[at..].find("</script").map_or(html.len(), |i| at + i);
        }
        tags.push(Tag {
            name,
            end,
            attributes,
        });
        if at >= html.len() {
            break;
        }
    }
    tags
}

/// Decodes the character references a template engine writes.
pub fn decode(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';').filter(|end| *end <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every URL the page links to or loads (`href` of links, `src` of media).
pub fn links(tags: &[Tag]) -> Vec<String> {
    tags.iter()
        .filter(|t| !t.end)
        .filter_map(|t| match t.name.as_str() {
            "a" | "link" => t.attribute("href"),
            "img" | "video" | "audio" | "source" | "iframe" => t.attribute("src"),
            _ => None,
        })
        .map(str::to_owned)
        .collect()
}

/// A form field: a single value, or a choice of several (a `<select>`).
#[derive(Clone, Debug)]
pub enum Field {
    Value(String, String),
    Choice {
        name: String,
        options: Vec<String>,
        selected: Option<String>,
    },
}

#[derive(Debug)]
pub struct Form {
    pub method: String,
    pub action: String,
    pub fields: Vec<Field>,
}

/// The forms of the page with their named fields.
pub fn forms(tags: &[Tag]) -> Vec<Form> {
    let mut forms = Vec::new();
    let mut current: Option<Form> = None;
    for tag in tags {
        match (tag.name.as_str(), tag.end) {
            ("form", false) => {
                current = Some(Form {
                    method: tag
                        .attribute("method")
                        .unwrap_or("get")
                        .to_ascii_uppercase(),
                    action: tag.attribute("action").unwrap_or_default().to_owned(),
                    fields: Vec::new(),
                });
            }
            ("form", true) => forms.extend(current.take()),
            ("input" | "textarea" | "button", false) => {
                let Some(form) = current.as_mut() else {
                    continue;
                };
                let Some(name) = tag.attribute("name") else {
                    continue;
                };
                let kind = tag.attribute("type").unwrap_or("text");
                if matches!(kind, "checkbox" | "radio") && !tag.has("checked") {
                    continue;
                }
                form.fields.push(Field::Value(
                    name.to_owned(),
                    tag.attribute("value").unwrap_or_default().to_owned(),
                ));
            }
            ("select", false) => {
                if let (Some(form), Some(name)) = (current.as_mut(), tag.attribute("name")) {
                    form.fields.push(Field::Choice {
                        name: name.to_owned(),
                        options: Vec::new(),
                        selected: None,
                    });
                }
            }
            ("option", false) => {
                if let Some(Field::Choice {
                    options, selected, ..
                }) = current.as_mut().and_then(|f| f.fields.last_mut())
                {
                    let value = tag.attribute("value").unwrap_or_default().to_owned();
                    if tag.has("selected") {
                        *selected = Some(value.clone());
                    }
                    options.push(value);
                }
            }
            _ => {}
        }
    }
    forms
}
