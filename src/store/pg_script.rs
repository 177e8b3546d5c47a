//! SQL text with literal values for PostgreSQL's simple-query protocol,
//! which takes several statements in one message but no parameters, and
//! statements prepared once per connection and executed from such text.
//! The group commit's messages ([`super::pg_group`]) are written with it;
//! it is the one place that quotes a value.

use std::collections::HashSet;

use cqrs_es::persist::PersistenceError;
use sha2::{Digest, Sha256};

use crate::projections::apply::{Insert, Param};

/// A statement prepared once per connection, under a name derived from its
/// text, so a changed statement is a new one.
pub struct Prepared {
    name: String,
    declaration: String,
}

impl Prepared {
    /// `parameters` are PostgreSQL types, `body` refers to them as `$1`, `$2`, ...
    pub fn new(parameters: &[&str], body: &str) -> Self {
        let declaration = format!("({}) AS {body}", parameters.join(", "));
        let name = format!("wb_{}", &hex::encode(Sha256::digest(declaration.as_bytes()))[..16]);
        Self { name, declaration }
    }
}

/// SQL text with literal values, for the simple-query protocol.
///
/// Text is written as an escape string, `E'...'`, with `'` and `\`
/// doubled: that reads back as exactly the text given, whatever
/// `standard_conforming_strings` says, so no value can end its literal. A
/// NUL cannot be sent at all (the protocol ends the message there, and
/// PostgreSQL's text refuses it with bound parameters too), so text with
/// one makes [`Script::finish`] fail instead.
pub struct Script<'a> {
    sql: String,
    nul: bool,
    /// Statements prepared on the connection before this script: long
    /// ago, or by an earlier message of the same transaction.
    prepared: &'a HashSet<String>,
    earlier: &'a [String],
    /// Statements this script prepares.
    preparing: Vec<String>,
}

impl<'a> Script<'a> {
    pub fn new(prepared: &'a HashSet<String>, earlier: &'a [String]) -> Self {
        Self { sql: String::new(), nul: false, prepared, earlier, preparing: Vec::new() }
    }

    /// SQL of our own, never a value.
    pub fn sql(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    pub fn text(&mut self, value: &str) -> &mut Self {
        self.nul |= value.contains('\0');
        self.sql.reserve(value.len() + 3);
        self.sql.push_str("E'");
        push_escaped(&mut self.sql, value, [b'\'', b'\\'], None);
        self.sql.push('\'');
        self
    }

    /// A whole number; a negative one in parentheses, so that `a - ` and a
    /// number never become the comment `a --1`.
    pub fn int(&mut self, value: i64) -> &mut Self {
        if value < 0 {
            self.sql.push_str(&format!("({value})"));
        } else {
            self.sql.push_str(&value.to_string());
        }
        self
    }

    /// A projection parameter, its NULLs typed as a bound parameter's would be.
    pub fn param(&mut self, param: &Param) -> &mut Self {
        match param {
            Param::Int(v) | Param::OptInt(Some(v)) => self.int(*v),
            Param::Text(v) | Param::OptText(Some(v)) => self.text(v),
            Param::OptInt(None) => self.sql("CAST(NULL AS BIGINT)"),
            Param::OptText(None) => self.sql("CAST(NULL AS TEXT)"),
        }
    }

    /// `items` rendered by `each`, separated by commas.
    pub fn list<T>(&mut self, items: impl IntoIterator<Item = T>, mut each: impl FnMut(&mut Self, T)) -> &mut Self {
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            each(self, item);
        }
        self
    }

    /// A `text[]` of `items`, as one array literal (see [`ArrayLiteral`]).
    pub fn texts<'t>(&mut self, items: impl IntoIterator<Item = &'t str>) -> &mut Self {
        let mut array = ArrayLiteral::default();
        for item in items {
            array.text(item);
        }
        self.array(array, "text[]")
    }

    /// An `int8[]` of `items`, as one array literal.
    pub fn ints(&mut self, items: impl IntoIterator<Item = i64>) -> &mut Self {
        let mut array = ArrayLiteral::default();
        for item in items {
            array.int(item);
        }
        self.array(array, "int8[]")
    }

    fn array(&mut self, array: ArrayLiteral, of: &str) -> &mut Self {
        self.text(&array.finish()).sql("::").sql(of)
    }

    /// `EXECUTE name(`, preceded by its `PREPARE` if the connection does
    /// not have it yet; the caller writes the arguments and the `)`.
    pub fn execute(&mut self, statement: &Prepared) -> &mut Self {
        let name = &statement.name;
        if !self.prepared.contains(name) && !self.earlier.contains(name) && !self.preparing.contains(name) {
            self.sql.push_str(&format!("PREPARE {} {};\n", statement.name, statement.declaration));
            self.preparing.push(statement.name.clone());
        }
        self.sql.push_str(&format!("EXECUTE {}(", statement.name));
        self
    }

    /// An [`Insert`] of the projection, as the projector writes it on
    /// PostgreSQL (one array per column, unnested and joined to what it
    /// looks up), its arrays written as literals.
    pub fn insert(&mut self, insert: &Insert) -> anyhow::Result<&mut Self> {
        let Some(first) = insert.rows.first() else { return Ok(self) };
        let numbers: Vec<bool> = first.iter().map(|p| matches!(p, Param::Int(_) | Param::OptInt(_))).collect();
        let types: Vec<&str> = numbers.iter().map(|n| if *n { "int8[]" } else { "text[]" }).collect();
        let names = (1..=first.len()).map(|i| format!("column{i}")).collect::<Vec<_>>().join(", ");
        let arrays = (1..=first.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let body = format!(
            "INSERT INTO {} SELECT {} FROM UNNEST({arrays}) AS v({names}) {} WHERE true {}",
            insert.into,
            insert.lookup.map_or("*", |lookup| lookup.select),
            insert.lookup.map_or("", |lookup| lookup.joins),
            insert.then
        );
        self.execute(&Prepared::new(&types, &body));
        for (i, (numbers, of)) in numbers.iter().zip(types).enumerate() {
            let mut array = ArrayLiteral::default();
            for row in &insert.rows {
                match &row[i] {
                    Param::Int(v) | Param::OptInt(Some(v)) if *numbers => array.int(*v),
                    Param::Text(v) | Param::OptText(Some(v)) if !*numbers => array.text(v),
                    Param::OptInt(None) if *numbers => array.null(),
                    Param::OptText(None) if !*numbers => array.null(),
                    _ => anyhow::bail!("column {} of an insert into {} mixes numbers and text", i + 1, insert.into),
                }
            }
            self.sql(if i > 0 { ", " } else { "" }).array(array, of);
        }
        Ok(self.sql(")"))
    }

    /// A statement of the projection (`$n` placeholders), executed with `params`.
    pub fn statement(&mut self, sql: &str, params: &[Param]) -> &mut Self {
        let types: Vec<&str> = params
            .iter()
            .map(|p| if matches!(p, Param::Int(_) | Param::OptInt(_)) { "int8" } else { "text" })
            .collect();
        self.execute(&Prepared::new(&types, sql)).list(params, |s, p| {
            s.param(p);
        });
        self.sql(")")
    }

    /// The text, and the names of the statements it prepares.
    pub fn finish(self) -> Result<(String, Vec<String>), PersistenceError> {
        if self.nul {
            return Err(PersistenceError::UnknownError(
                "a value holds a NUL character, which the store cannot keep".into(),
            ));
        }
        Ok((self.sql, self.preparing))
    }
}

/// Appends `value` to `out` with each byte of `special` preceded by
/// `escape`, or doubled when `escape` is `None`, copying the runs between
/// them whole: character by character, escaping the group's payloads
/// (twice each, as array elements and then as the literal holding the
/// array) was a quarter of the time the committer took to write its
/// message (benches/RESULTS.md, seventh session). The special bytes are
/// ASCII, which never occurs inside a multi-byte UTF-8 character, so the
/// runs end only at character boundaries.
fn push_escaped(out: &mut String, value: &str, special: [u8; 2], escape: Option<char>) {
    let mut run = 0;
    for (i, byte) in value.bytes().enumerate() {
        if special.contains(&byte) {
            out.push_str(&value[run..i]);
            out.push(escape.unwrap_or(char::from(byte)));
            run = i;
        }
    }
    out.push_str(&value[run..]);
}

/// An array written as PostgreSQL's array input text, `{"a","b",NULL}`,
/// for [`Script`] to send as one string literal with a cast.
///
/// Why not `ARRAY[E'a', E'b']`: there every element is a constant of its
/// own that PostgreSQL's grammar parses, analyses, coerces and folds on
/// every `EXECUTE`, which was a measurable share of the committer's
/// backend (benches/RESULTS.md, 2026-12-03, sixth session); an array
/// literal is one constant, read by `array_in`. Every text element is
/// double-quoted with `"` and `\` escaped by a backslash, so no element
/// can be read as `NULL`, lose its spaces or end early; a NUL cannot be
/// sent at all and is refused by [`Script::text`].
#[derive(Default)]
struct ArrayLiteral {
    text: String,
    any: bool,
}

impl ArrayLiteral {
    fn next(&mut self) -> &mut String {
        self.text.push(if self.any { ',' } else { '{' });
        self.any = true;
        &mut self.text
    }

    fn text(&mut self, value: &str) {
        let text = self.next();
        text.reserve(value.len() + 2);
        text.push('"');
        push_escaped(text, value, [b'"', b'\\'], Some('\\'));
        text.push('"');
    }

    fn int(&mut self, value: i64) {
        let text = self.next();
        text.push_str(itoa::Buffer::new().format(value));
    }

    fn null(&mut self) {
        self.next().push_str("NULL");
    }

    fn finish(mut self) -> String {
        if !self.any {
            self.text.push('{');
        }
        self.text.push('}');
        self.text
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    use sqlx::{Executor, Row};

    use super::*;

    fn admin_url() -> String {
        let server =
            std::env::var("WIJKBUDGET_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        format!("{server}/postgres")
    }

    /// A runtime and one connection, for properties that run many queries
    /// from proptest's synchronous closures.
    fn connected() -> (tokio::runtime::Runtime, std::cell::RefCell<sqlx::PgConnection>) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let conn = runtime
            .block_on(<sqlx::PgConnection as sqlx::Connection>::connect(&admin_url()))
            .expect("PostgreSQL is reachable; start it with .ci/run or pg_ctlcluster");
        (runtime, conn.into())
    }

    /// The one property the whole script rests on: whatever the text, its
    /// literal reads back as exactly that text, also when the server does
    /// not treat backslashes as ordinary characters.
    #[test]
    fn any_text_written_as_a_literal_reads_back_unchanged() {
        let (runtime, conn) = connected();
        for conforming in ["on", "off"] {
            runtime
                .block_on(conn.borrow_mut().execute(&*format!("SET standard_conforming_strings = {conforming}")))
                .unwrap();
            let mut runner = TestRunner::new(Config { cases: 200, ..Config::default() });
            // Any text but NUL, weighted towards what breaks quoting.
            let text = prop::collection::vec(
                prop_oneof![Just('\''), Just('\\'), Just('$'), Just(';'), Just('-'), Just('\n'), any::<char>()],
                0..40,
            )
            .prop_map(|chars| chars.into_iter().filter(|c| *c != '\0').collect::<String>());
            runner
                .run(&text, |value| {
                    let none = HashSet::new();
                    let mut script = Script::new(&none, &[]);
                    script.sql("SELECT ").text(&value).sql(" AS v, ").int(-7).sql(" - ").int(-3).sql(" AS n");
                    let (sql, _) = script.finish().unwrap();
                    let row = runtime.block_on(conn.borrow_mut().fetch_one(sqlx::raw_sql(&sql))).unwrap();
                    prop_assert_eq!(row.get::<String, _>("v"), value);
                    prop_assert_eq!(row.get::<i32, _>("n"), -4);
                    Ok(())
                })
                .unwrap();
        }
    }

    /// The arrays the group's statements take: whatever the texts (quotes,
    /// backslashes, braces, commas, spaces, the word NULL, none at all),
    /// the array literal reads back as exactly those elements, in order.
    #[test]
    fn any_texts_and_numbers_written_as_an_array_read_back_unchanged() {
        let (runtime, conn) = connected();
        let element = prop_oneof![
            Just("NULL".to_string()),
            Just(String::new()),
            Just(" spaced ".to_string()),
            prop::collection::vec(
                prop_oneof![
                    Just('"'),
                    Just('\\'),
                    Just('\''),
                    Just('{'),
                    Just('}'),
                    Just(','),
                    Just(' '),
                    any::<char>()
                ],
                0..12
            )
            .prop_map(|chars| chars.into_iter().filter(|c| *c != '\0').collect::<String>()),
        ];
        let arrays = (prop::collection::vec(element, 0..8), prop::collection::vec(any::<i64>(), 0..8));
        let mut runner = TestRunner::new(Config { cases: 200, ..Config::default() });
        runner
            .run(&arrays, |(texts, ints)| {
                let none = HashSet::new();
                let mut script = Script::new(&none, &[]);
                // Read back as JSON: sqlx's decoder of array text takes a
                // quoted "NULL" element for a NULL (sqlx-postgres 0.8.6).
                script.sql("SELECT CAST(to_json(").texts(texts.iter().map(String::as_str)).sql(") AS TEXT) AS t, ");
                script.sql("CAST(to_json(").ints(ints.iter().copied()).sql(") AS TEXT) AS n");
                let (sql, _) = script.finish().unwrap();
                let row = runtime.block_on(conn.borrow_mut().fetch_one(sqlx::raw_sql(&sql))).unwrap();
                let read = |column: &str| serde_json::from_str::<serde_json::Value>(&row.get::<String, _>(column));
                prop_assert_eq!(read("t").unwrap(), serde_json::json!(texts));
                prop_assert_eq!(read("n").unwrap(), serde_json::json!(ints));
                Ok(())
            })
            .unwrap();
    }

    /// A projection insert's columns are arrays too, NULLs among them.
    #[test]
    fn an_insert_sends_its_nulls_as_nulls() {
        let none = HashSet::new();
        let rows = vec![
            vec![Param::OptInt(None), Param::OptText(Some("NULL".into()))],
            vec![Param::OptInt(Some(-3)), Param::OptText(None)],
        ];
        let insert = Insert { into: "t", lookup: None, then: "", rows };
        let mut script = Script::new(&none, &[]);
        script.insert(&insert).unwrap();
        let (text, _) = script.finish().unwrap();
        assert!(text.ends_with("(E'{NULL,-3}'::int8[], E'{\"NULL\",NULL}'::text[])"), "{text}");
    }

    proptest! {
        /// Escaping by runs writes what escaping character by character
        /// wrote, for any text (multi-byte characters beside the special
        /// ones included); the PostgreSQL properties above check what that
        /// means to the server.
        #[test]
        fn escaping_by_runs_matches_escaping_by_character(value in "[a-zé€'\"\\\\{},😀 ]{0,40}") {
            let by_character = |escape: Option<char>, special: [char; 2]| {
                let mut out = String::new();
                for c in value.chars() {
                    if special.contains(&c) {
                        out.push(escape.unwrap_or(c));
                    }
                    out.push(c);
                }
                out
            };
            let mut doubled = String::new();
            push_escaped(&mut doubled, &value, [b'\'', b'\\'], None);
            prop_assert_eq!(doubled, by_character(None, ['\'', '\\']));
            let mut prefixed = String::new();
            push_escaped(&mut prefixed, &value, [b'"', b'\\'], Some('\\'));
            prop_assert_eq!(prefixed, by_character(Some('\\'), ['"', '\\']));
        }
    }

    #[test]
    fn text_with_a_nul_is_refused_rather_than_cut_short() {
        let none = HashSet::new();
        let mut script = Script::new(&none, &[]);
        script.sql("SELECT ").text("a\0'; DROP TABLE events; --");
        assert!(script.finish().is_err());
    }

    #[test]
    fn a_statement_is_prepared_once_then_executed_with_literals() {
        let none = HashSet::new();
        let params = [Param::Int(-5), Param::Text("it's".into()), Param::OptInt(None), Param::OptText(None)];
        let sql = "UPDATE t SET a = a - $1, b = $2, c = $3, d = $4";
        let mut script = Script::new(&none, &[]);
        script.statement(sql, &params).sql(";\n").statement(sql, &params);
        let (text, preparing) = script.finish().unwrap();
        let name = &preparing[0];
        assert_eq!(preparing.len(), 1, "prepared once: {text}");
        let execute = format!("EXECUTE {name}((-5), E'it''s', CAST(NULL AS BIGINT), CAST(NULL AS TEXT))");
        assert_eq!(text, format!("PREPARE {name} (int8, text, int8, text) AS {sql};\n{execute};\n{execute}"));
        let known = HashSet::from([name.clone()]);
        let mut later = Script::new(&known, &[]);
        later.statement(sql, &params);
        assert_eq!(later.finish().unwrap(), (execute, vec![]), "a later script only executes it");
    }
}
