//! Validates the GraphQL documents the Linear connector sends against Linear's published
//! schema (`../shared/fixtures/linear/schema.graphql`): every field exists on its type,
//! every argument and input-object key exists, variables are declared with the argument's
//! type, objects have selections and leaves have none. A small reader of the SDL and
//! executable subsets statsync uses, so no GraphQL crate is needed for one test.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Str,
    Punct(char),
    Spread,
}

fn tokenize(text: &str) -> Vec<Tok> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() || c == ',' {
            i += 1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if text_at(&chars, i, "\"\"\"") {
            i += 3;
            while i < chars.len() && !text_at(&chars, i, "\"\"\"") {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 3;
            out.push(Tok::Str);
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(Tok::Str);
        } else if text_at(&chars, i, "...") {
            i += 3;
            out.push(Tok::Spread);
        } else if c.is_alphanumeric() || c == '_' || c == '-' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '-' | '.'))
            {
                i += 1;
            }
            out.push(Tok::Name(chars[start..i].iter().collect()));
        } else {
            out.push(Tok::Punct(c));
            i += 1;
        }
    }
    out
}

fn text_at(chars: &[char], i: usize, s: &str) -> bool {
    s.chars()
        .enumerate()
        .all(|(k, c)| chars.get(i + k) == Some(&c))
}

#[derive(Debug, Clone)]
struct Field {
    ty: String,
    args: HashMap<String, String>,
}

/// Type name → its fields (objects, interfaces, input objects). Scalars and enums are
/// the names that appear as types but have no entry.
struct Schema(HashMap<String, HashMap<String, Field>>);

fn named(ty: &str) -> &str {
    ty.trim_matches(|c| c == '[' || c == ']' || c == '!')
}

struct Cursor {
    toks: Vec<Tok>,
    at: usize,
}

impl Cursor {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }
    fn name(&mut self) -> String {
        match self.next() {
            Some(Tok::Name(n)) => n,
            other => panic!(
                "expected a name, found {other:?} at token {}: {:?}",
                self.at,
                &self.toks[self.at.saturating_sub(12)..self.at.min(self.toks.len())]
            ),
        }
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Punct(c)) {
            self.at += 1;
            true
        } else {
            false
        }
    }
    /// Skips descriptions (string tokens), then eats `c` if it comes next.
    fn eat_description_then(&mut self, c: char) -> bool {
        while self.peek() == Some(&Tok::Str) {
            self.at += 1;
        }
        self.eat(c)
    }
    fn expect(&mut self, c: char) {
        assert!(
            self.eat(c),
            "expected `{c}`, found {:?} at token {}",
            self.peek(),
            self.at
        );
    }
    /// Skips one balanced `{}` / `()` / `[]` group starting at the cursor.
    fn skip_group(&mut self) {
        let mut depth = 0;
        loop {
            match self.next() {
                Some(Tok::Punct('{' | '(' | '[')) => depth += 1,
                Some(Tok::Punct('}' | ')' | ']')) => depth -= 1,
                None => return,
                _ => {}
            }
            if depth == 0 {
                return;
            }
        }
    }
    fn type_ref(&mut self) -> String {
        let mut ty = String::new();
        if self.eat('[') {
            ty.push('[');
            ty.push_str(&self.type_ref());
            self.expect(']');
            ty.push(']');
        } else {
            ty.push_str(&self.name());
        }
        if self.eat('!') {
            ty.push('!');
        }
        ty
    }
    fn directives(&mut self) {
        while self.eat('@') {
            self.name();
            if self.peek() == Some(&Tok::Punct('(')) {
                self.skip_group();
            }
        }
    }
    fn value(&mut self) {
        match self.peek() {
            Some(Tok::Punct('{' | '[')) => self.skip_group(),
            _ => {
                self.next();
            }
        }
    }
}

fn parse_schema(text: &str) -> Schema {
    let mut c = Cursor {
        toks: tokenize(text),
        at: 0,
    };
    let mut types = HashMap::new();
    while let Some(tok) = c.next() {
        let Tok::Name(word) = tok else { continue };
        match word.as_str() {
            "type" | "interface" | "input" => {
                let name = c.name();
                while c.peek() != Some(&Tok::Punct('{')) && c.peek().is_some() {
                    c.next();
                }
                c.expect('{');
                let mut fields = HashMap::new();
                while !c.eat_description_then('}') {
                    let field = c.name();
                    let mut args = HashMap::new();
                    if c.eat('(') {
                        while !c.eat_description_then(')') {
                            let arg = c.name();
                            c.expect(':');
                            args.insert(arg, c.type_ref());
                            if c.eat('=') {
                                c.value();
                            }
                            c.directives();
                        }
                    }
                    c.expect(':');
                    let ty = c.type_ref();
                    if c.eat('=') {
                        c.value();
                    }
                    c.directives();
                    fields.insert(field, Field { ty, args });
                }
                types.insert(name, fields);
            }
            "enum" | "schema" => {
                while c.peek() != Some(&Tok::Punct('{')) && c.peek().is_some() {
                    c.next();
                }
                c.skip_group();
            }
            "directive" => {
                c.expect('@');
                c.name();
                if c.peek() == Some(&Tok::Punct('(')) {
                    c.skip_group();
                }
            }
            _ => {}
        }
    }
    Schema(types)
}

impl Schema {
    fn fields(&self, ty: &str) -> &HashMap<String, Field> {
        self.0
            .get(named(ty))
            .unwrap_or_else(|| panic!("type `{ty}` is not an object in the schema"))
    }

    /// Checks a whole operation; panics naming the first thing that does not exist.
    fn check(&self, document: &str) {
        let mut c = Cursor {
            toks: tokenize(document),
            at: 0,
        };
        let root = match c.name().as_str() {
            "query" => "Query",
            "mutation" => "Mutation",
            other => panic!("unsupported operation `{other}`"),
        };
        if matches!(c.peek(), Some(Tok::Name(_))) {
            c.name();
        }
        let mut vars = HashMap::new();
        if c.eat('(') {
            while !c.eat(')') {
                c.expect('$');
                let v = c.name();
                c.expect(':');
                vars.insert(v, c.type_ref());
            }
        }
        self.selection(&mut c, root, &vars);
        assert!(c.peek().is_none(), "trailing tokens in the document");
    }

    fn selection(&self, c: &mut Cursor, ty: &str, vars: &HashMap<String, String>) {
        c.expect('{');
        while !c.eat('}') {
            if c.peek() == Some(&Tok::Spread) {
                c.next();
                assert_eq!(c.name(), "on");
                let on = c.name();
                self.fields(&on);
                self.selection(c, &on, vars);
                continue;
            }
            let name = c.name();
            let field = self
                .fields(ty)
                .get(&name)
                .unwrap_or_else(|| panic!("`{ty}` has no field `{name}`"));
            if c.eat('(') {
                while !c.eat(')') {
                    let arg = c.name();
                    let arg_ty = field
                        .args
                        .get(&arg)
                        .unwrap_or_else(|| panic!("`{ty}.{name}` has no argument `{arg}`"));
                    c.expect(':');
                    self.argument(c, arg_ty, vars, &format!("{ty}.{name}({arg})"));
                }
            }
            let object = self.0.contains_key(named(&field.ty));
            let selects = c.peek() == Some(&Tok::Punct('{'));
            assert_eq!(
                object, selects,
                "`{ty}.{name}`: selections iff it is an object"
            );
            if selects {
                self.selection(c, named(&field.ty), vars);
            }
        }
    }

    fn argument(&self, c: &mut Cursor, ty: &str, vars: &HashMap<String, String>, at: &str) {
        if c.eat('$') {
            let v = c.name();
            let declared = vars
                .get(&v)
                .unwrap_or_else(|| panic!("${v} is used at {at} but not declared"));
            let nullable = ty.trim_end_matches('!');
            assert!(
                declared == ty || declared.trim_end_matches('!') == nullable,
                "${v}: {declared} does not fit {at}: {ty}"
            );
        } else if c.eat('{') {
            let fields = self.fields(ty);
            while !c.eat('}') {
                let key = c.name();
                let field = fields
                    .get(&key)
                    .unwrap_or_else(|| panic!("input `{}` has no field `{key}` ({at})", named(ty)));
                c.expect(':');
                self.argument(c, &field.ty, vars, &format!("{at}.{key}"));
            }
        } else {
            c.value();
        }
    }
}

fn linear_schema() -> Schema {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/linear/schema.graphql"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    parse_schema(&text)
}

#[test]
fn every_document_the_linear_connector_sends_is_valid_against_linears_schema() {
    let schema = linear_schema();
    for doc in [
        super::WORKFLOW_STATES_QUERY,
        super::ISSUE_TEAM_QUERY,
        super::ISSUE_UPDATE_MUTATION,
        super::VIEWER_DETAIL_QUERY,
        super::WEBHOOKS_QUERY,
        super::WEBHOOK_CREATE_MUTATION,
        super::WEBHOOK_UPDATE_MUTATION,
        crate::systems::linear::listing::ISSUES_PAGE_QUERY,
    ] {
        schema.check(doc);
    }
}

#[test]
#[should_panic(expected = "has no field `stateName`")]
fn the_checker_refuses_a_field_the_schema_lacks() {
    linear_schema().check(
        "mutation($id: String!) { issueUpdate(id: $id, input: {stateName: $id}) { success } }",
    );
}

#[test]
#[should_panic(expected = "has no field `colour`")]
fn the_checker_refuses_a_selection_the_type_lacks() {
    linear_schema().check("query { workflowStates { nodes { id colour } } }");
}
