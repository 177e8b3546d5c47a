//! The building blocks every page is made of, one function per component
//! (after GOV.UK Frontend's macros): the page frame, the error summary, a
//! labelled field, a money table and the bar chart. maud escapes every
//! value it interpolates, so text from the ledger can never become markup.

use maud::{html, Markup, DOCTYPE};

use super::format::euro;
use super::session::Viewer;
use crate::auth::Role;

/// The sections of the app, in the order of the menu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Wijk,
    Fondsen,
    Audittrail,
    Integriteit,
    Jaarafsluiting,
    Boeken,
    None,
}

impl Section {
    const MENU: [(Section, &'static str, &'static str); 6] = [
        (Section::Wijk, "/wijken", "Mijn wijk"),
        (Section::Fondsen, "/fondsen", "Fondsen"),
        (Section::Audittrail, "/audittrail", "Audittrail"),
        (Section::Integriteit, "/integriteit", "Integriteit"),
        (Section::Jaarafsluiting, "/jaarafsluiting", "Jaarafsluiting"),
        (Section::Boeken, "/boeken", "Boeken"),
    ];

    /// Who may open this section: exactly the roles the API lets read (or,
    /// for Boeken, write) what it shows.
    pub fn roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            Section::Wijk | Section::Audittrail | Section::None => &[Finance, Auditor, Council, Wijkregisseur],
            Section::Fondsen | Section::Jaarafsluiting => &[Finance, Auditor, Council],
            Section::Integriteit => &[Finance, Auditor],
            Section::Boeken => &[Finance],
        }
    }
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Finance => "financiën",
        Role::Wijkregisseur => "wijkregisseur",
        Role::Council => "raadslid",
        Role::Auditor => "auditor",
    }
}

/// The frame of every page: skip link, header with the menu for the
/// viewer's role, sign-out, and the main content.
pub fn layout(title: &str, viewer: Option<&Viewer>, current: Section, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="nl" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " – Wijkbudget" }
                link rel="stylesheet" href=(super::STYLESHEET_PATH);
                script src=(super::SCRIPT_PATH) defer {}
            }
            body {
                a class="skip-link" href="#inhoud" { "Direct naar de inhoud" }
                header class="site-header" {
                    div class="wrap" {
                        a class="brand" href="/" { "Wijkbudget" }
                        @if let Some(viewer) = viewer {
                            nav aria-label="Hoofdmenu" {
                                ul {
                                    @for (section, href, label) in Section::MENU {
                                        @if section.roles().contains(&viewer.caller.role) {
                                            li {
                                                @if section == current {
                                                    a href=(href) aria-current="page" { (label) }
                                                } @else {
                                                    a href=(href) { (label) }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                            form class="sign-out" method="post" action="/uitloggen" {
                                span { (viewer.caller.name) " (" (role_name(viewer.caller.role)) ")" }
                                (csrf_field(viewer))
                                button type="submit" class="link-button" { "Uitloggen" }
                            }
                        }
                    }
                }
                main id="inhoud" class="wrap" tabindex="-1" {
                    (content)
                }
                footer class="site-footer" {
                    div class="wrap" { "Wijkbudget: elke euro van het wijkbudget, van besluit tot uitgave." }
                }
            }
        }
    }
}

pub fn csrf_field(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

/// One field's error, for the summary and beside the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The form field's name; its input has id `veld-{field}`.
    pub field: String,
    pub message: String,
}

/// GOV.UK's error summary: a box at the top that links each message to its field.
pub fn error_summary(errors: &[FieldError]) -> Markup {
    html! {
        @if !errors.is_empty() {
            div class="error-summary" role="alert" aria-labelledby="fouten-titel" tabindex="-1" {
                h2 id="fouten-titel" { "Er is een probleem" }
                ul {
                    @for e in errors {
                        li { a href={ "#veld-" (e.field) } { (e.message) } }
                    }
                }
            }
        }
    }
}

/// A labelled input whose error sits above it and which keeps what was typed.
pub struct Field<'a> {
    pub name: &'a str,
    pub label: &'a str,
    pub hint: Option<&'a str>,
    pub kind: &'a str,
    pub value: &'a str,
    pub errors: &'a [FieldError],
    pub extra: Option<&'a str>,
}

impl Field<'_> {
    pub fn render(&self) -> Markup {
        let id = format!("veld-{}", self.name);
        let error = self.errors.iter().find(|e| e.field == self.name);
        let hint_id = format!("{id}-hint");
        let error_id = format!("{id}-fout");
        let described: Vec<&str> =
            [self.hint.map(|_| hint_id.as_str()), error.map(|_| error_id.as_str())].into_iter().flatten().collect();
        let described = described.join(" ");
        html! {
            div class={ "field" @if error.is_some() { " field-error" } } {
                label for=(id) { (self.label) }
                @if let Some(hint) = self.hint { p class="hint" id=(hint_id) { (hint) } }
                @if let Some(e) = error { p class="error-message" id=(error_id) { span class="visually-hidden" { "Fout: " } (e.message) } }
                input id=(id) name=(self.name) type=(self.kind) value=(self.value)
                    inputmode=[self.extra]
                    aria-describedby=[(!described.is_empty()).then_some(described.as_str())]
                    aria-invalid=[error.map(|_| "true")];
            }
        }
    }
}

/// One segment of a bar: a label, an amount in cents and a CSS class.
pub struct Segment<'a> {
    pub label: &'a str,
    pub cents: i64,
    pub class: &'a str,
}

/// A horizontal bar of a fund's money, drawn as inline SVG. The numbers are
/// also in the table beside it, so a screen reader gets the same facts;
/// the SVG itself carries a text title and description.
pub fn money_bar(title: &str, segments: &[Segment<'_>]) -> Markup {
    const WIDTH: i64 = 600;
    let total: i64 = segments.iter().map(|s| s.cents.max(0)).sum();
    let description: Vec<String> = segments.iter().map(|s| format!("{}: {}", s.label, euro(s.cents))).collect();
    let mut x = 0i64;
    let mut rects = Vec::new();
    for s in segments {
        let width = if total > 0 { s.cents.max(0) * WIDTH / total } else { 0 };
        rects.push((x, width, s.class));
        x += width;
    }
    html! {
        svg class="bar" viewBox={ "0 0 " (WIDTH) " 24" } width="100%" height="24" role="img" preserveAspectRatio="none" {
            title { (title) }
            desc { (description.join("; ")) }
            rect class="bar-empty" x="0" y="0" width=(WIDTH) height="24" {}
            @for (x, width, class) in rects {
                @if width > 0 {
                    rect class=(class) x=(x) y="0" width=(width) height="24" {}
                }
            }
        }
    }
}

/// The legend shared by every bar on a page.
pub fn bar_legend(segments: &[(&str, &str)]) -> Markup {
    html! {
        ul class="legend" {
            @for (class, label) in segments {
                li { svg width="14" height="14" aria-hidden="true" focusable="false" { rect class=(class) width="14" height="14" {} } " " (label) }
            }
        }
    }
}

/// A right-aligned money cell.
pub fn money(cents: i64) -> Markup {
    html! { td class="num" { (euro(cents)) } }
}

/// An explanatory note for screen and print.
pub fn note(text: &str) -> Markup {
    html! { p class="note" { (text) } }
}
