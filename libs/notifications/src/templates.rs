//! Email content: one public struct per message, rendered from askama templates under
//! `templates/email/<message>/` into a subject, a plain-text body and an HTML body.
//!
//! Templates are compiled into the binary, so a missing file or an unknown field is a build
//! error rather than a failed job at send time. `.html` templates escape every value, `.txt`
//! templates do not: the text part is shown as-is by mail clients, so escaping would only
//! corrupt names like "Smith & Co".

use lettre::{
    Message,
    message::{Mailbox, MultiPart},
};

/// A message rendered and ready to be put into a [`Message`] with [`build_message`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedEmail {
    /// One line, whitespace collapsed.
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Content of one kind of email.
pub trait EmailContent {
    /// The message's folder under `templates/email/`.
    const TEMPLATE: &'static str;

    fn render(&self) -> Result<RenderedEmail, askama::Error>;
}

/// A `multipart/alternative` message: the text part first and the HTML part last, because
/// clients show the last alternative they can display.
///
/// The Message-ID is the caller's so that a retried send repeats it and receivers can drop the
/// duplicate.
pub fn build_message(
    from: &Mailbox,
    to: Mailbox,
    message_id: String,
    email: &RenderedEmail,
) -> Result<Message, lettre::error::Error> {
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject.as_str())
        .message_id(Some(message_id))
        .multipart(MultiPart::alternative_plain_html(
            email.text.clone(),
            email.html.clone(),
        ))
}

/// Subjects embed user-chosen values (an organisation name); collapsing all whitespace keeps a
/// stray newline in them from breaking the subject over lines.
#[doc(hidden)] // for `email_messages!`
pub fn one_line(subject: &str) -> String {
    subject.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// askama drops the template file's final newline; bodies read better ending in one.
#[doc(hidden)] // for `email_messages!`
pub fn with_final_newline(mut body: String) -> String {
    if !body.ends_with('\n') {
        body.push('\n');
    }
    body
}

/// Whether `path` is `email/<folder>/<file>`: checked at compile time for each message, since
/// askama needs its paths as literals and so each one is written out next to the folder name.
#[doc(hidden)] // for `email_messages!`
pub const fn is_part_path(path: &str, folder: &str, file: &str) -> bool {
    const fn has_at(s: &[u8], at: usize, part: &[u8]) -> bool {
        let mut i = 0;
        while i < part.len() {
            if s[at + i] != part[i] {
                return false;
            }
            i += 1;
        }
        true
    }
    let (p, folder, file) = (path.as_bytes(), folder.as_bytes(), file.as_bytes());
    // The length check first keeps the indexing below in bounds.
    p.len() == "email/".len() + folder.len() + 1 + file.len()
        && has_at(p, 0, b"email/")
        && has_at(p, 6, folder)
        && has_at(p, 6 + folder.len(), b"/")
        && has_at(p, 7 + folder.len(), file)
}

/// Declares each message's public struct and its [`EmailContent`] impl. The three askama views
/// are private wrappers that deref to the message, so templates name fields directly
/// (`{{ name }}`) and a message stays one public type. Exported: every domain crate declares
/// its emails with it, its templates found through its own `askama.toml`.
#[macro_export]
macro_rules! email_messages {
    ($(
        $(#[$meta:meta])*
        $name:ident in $folder:literal {
            subject: $subject:literal,
            text: $text:literal,
            html: $html:literal $(,)?
        } {
            $( $(#[$fmeta:meta])* $field:ident: $ty:ty ),* $(,)?
        }
    )*) => {$(
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        const _: () = assert!(
            $crate::is_part_path($subject, $folder, "subject.txt")
                && $crate::is_part_path($text, $folder, "body.txt")
                && $crate::is_part_path($html, $folder, "body.html"),
            "template paths must be email/<TEMPLATE>/subject.txt, body.txt and body.html",
        );

        impl $crate::EmailContent for $name {
            const TEMPLATE: &'static str = $folder;

            fn render(&self) -> Result<$crate::RenderedEmail, ::askama::Error> {
                $crate::email_messages!(@view Subject $subject $name);
                $crate::email_messages!(@view Text $text $name);
                $crate::email_messages!(@view Html $html $name);
                Ok($crate::RenderedEmail {
                    subject: $crate::one_line(&::askama::Template::render(&Subject(self))?),
                    text: $crate::with_final_newline(::askama::Template::render(&Text(self))?),
                    html: $crate::with_final_newline(::askama::Template::render(&Html(self))?),
                })
            }
        }
    )*};
    (@view $view:ident $path:literal $name:ident) => {
        #[derive(::askama::Template)]
        #[template(path = $path)]
        struct $view<'a>(&'a $name);

        impl std::ops::Deref for $view<'_> {
            type Target = $name;

            fn deref(&self) -> &$name {
                self.0
            }
        }
    };
}

email_messages! {
    /// Asks a new user to confirm their email address.
    VerifyEmail in "verify_email" {
        subject: "email/verify_email/subject.txt",
        text: "email/verify_email/body.txt",
        html: "email/verify_email/body.html",
    } {
        name: String,
        link: String,
        expires_hours: u32,
    }

    /// A password reset link, sent on request.
    PasswordReset in "password_reset" {
        subject: "email/password_reset/subject.txt",
        text: "email/password_reset/body.txt",
        html: "email/password_reset/body.html",
    } {
        name: String,
        link: String,
        expires_minutes: u32,
    }

    /// An invitation to join an organisation with a role.
    Invitation in "invitation" {
        subject: "email/invitation/subject.txt",
        text: "email/invitation/body.txt",
        html: "email/invitation/body.html",
    } {
        inviter_name: String,
        organisation: String,
        role: String,
        link: String,
        expires_days: u32,
    }

    /// Sent to a new organisation's owner once it is ready.
    Welcome in "welcome" {
        subject: "email/welcome/subject.txt",
        text: "email/welcome/body.txt",
        html: "email/welcome/body.html",
    } {
        name: String,
        organisation: String,
        dashboard_link: String,
    }

    /// Tells the owner of an account that its password changed and other sessions ended.
    PasswordChanged in "password_changed" {
        subject: "email/password_changed/subject.txt",
        text: "email/password_changed/body.txt",
        html: "email/password_changed/body.html",
    } {
        name: String,
        reset_link: String,
    }

    /// Sent to the NEW address, to prove it belongs to the account holder.
    EmailChange in "email_change" {
        subject: "email/email_change/subject.txt",
        text: "email/email_change/body.txt",
        html: "email/email_change/body.html",
    } {
        name: String,
        new_email: String,
        link: String,
        expires_hours: u32,
    }

    /// Sent instead of a verification email when a sign-up uses a registered address, so the
    /// sign-up response does not reveal which addresses have accounts.
    AccountExists in "account_exists" {
        subject: "email/account_exists/subject.txt",
        text: "email/account_exists/body.txt",
        html: "email/account_exists/body.html",
    } {
        name: String,
        login_link: String,
        reset_link: String,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "<script>alert(1)</script>";
    const ESCAPED: &str = "&#60;script&#62;alert(1)&#60;/script&#62;";

    const LINK: &str = "https://app.example.test/t/abc?x=1&y=2";
    const OTHER_LINK: &str = "https://app.example.test/reset";

    fn s(value: &str) -> String {
        value.to_owned()
    }

    fn render<E: EmailContent>(email: E) -> (&'static str, RenderedEmail) {
        (E::TEMPLATE, email.render().expect(E::TEMPLATE))
    }

    /// Every message, with `name` standing in for each person and organisation name, and
    /// `LINK` for every link except the second one of `account_exists`.
    fn all(name: &str) -> Vec<(&'static str, RenderedEmail)> {
        let (name, link) = (s(name), s(LINK));
        vec![
            render(VerifyEmail {
                name: name.clone(),
                link: link.clone(),
                expires_hours: 24,
            }),
            render(PasswordReset {
                name: name.clone(),
                link: link.clone(),
                expires_minutes: 30,
            }),
            render(Invitation {
                inviter_name: name.clone(),
                organisation: name.clone(),
                role: s("admin"),
                link: link.clone(),
                expires_days: 7,
            }),
            render(Welcome {
                name: name.clone(),
                organisation: name.clone(),
                dashboard_link: link.clone(),
            }),
            render(PasswordChanged {
                name: name.clone(),
                reset_link: link.clone(),
            }),
            render(EmailChange {
                name: name.clone(),
                new_email: s("new@example.test"),
                link: link.clone(),
                expires_hours: 1,
            }),
            render(AccountExists {
                name,
                login_link: link,
                reset_link: s(OTHER_LINK),
            }),
        ]
    }

    #[test]
    fn every_message_renders() {
        let rendered = all("Ada");
        assert_eq!(rendered.len(), 7);
        for (template, email) in rendered {
            assert!(!email.subject.is_empty(), "{template}");
            assert!(email.text.contains("Ada"), "{template}");
            assert!(email.html.contains("Ada"), "{template}");
            assert!(email.html.starts_with("<!DOCTYPE html>"), "{template}");
            assert!(
                email.html.contains("You received this email because"),
                "{template}"
            );
            // No remote images or fonts: clients block them and they track opens.
            assert!(!email.html.contains("<img"), "{template}");
            assert!(!email.html.contains("<link"), "{template}");
        }
    }

    #[test]
    fn html_escapes_hostile_values_and_text_keeps_them() {
        for (template, email) in all(HOSTILE) {
            assert!(!email.html.contains(HOSTILE), "{template}: {}", email.html);
            assert!(email.html.contains(ESCAPED), "{template}: {}", email.html);
            assert!(email.text.contains(HOSTILE), "{template}: {}", email.text);
        }
    }

    #[test]
    fn links_stand_alone_in_the_text() {
        for (template, email) in all("Ada") {
            let mut links = vec![LINK];
            if template == AccountExists::TEMPLATE {
                links.push(OTHER_LINK);
            }
            for link in links {
                assert!(
                    email.text.lines().any(|line| line == link),
                    "{template}: {link} not on its own line in\n{}",
                    email.text
                );
                // In HTML the link is an attribute value, so its `&` is escaped.
                let escaped = link.replace('&', "&#38;");
                assert!(
                    email.html.contains(&format!("href=\"{escaped}\"")),
                    "{template}"
                );
            }
        }
    }

    #[test]
    fn subjects_are_one_line() {
        for (template, email) in all("Ada\nLovelace\r\n") {
            assert!(!email.subject.contains(['\n', '\r']), "{template}");
            assert_eq!(email.subject, email.subject.trim(), "{template}");
        }
    }

    #[test]
    fn organisation_is_in_invitation_and_welcome_subjects() {
        let welcome = Welcome {
            name: s("Ada"),
            organisation: s("Acme"),
            dashboard_link: s("x"),
        };
        assert!(welcome.render().unwrap().subject.contains("Acme"));
        let invitation = Invitation {
            inviter_name: s("Ada"),
            organisation: s("Acme"),
            role: s("member"),
            link: s("x"),
            expires_days: 1,
        };
        assert!(invitation.render().unwrap().subject.contains("Acme"));
    }

    #[test]
    fn template_names_are_the_folders() {
        assert_eq!(VerifyEmail::TEMPLATE, "verify_email");
        assert_eq!(AccountExists::TEMPLATE, "account_exists");
        assert!(is_part_path(
            "email/welcome/body.txt",
            "welcome",
            "body.txt"
        ));
        assert!(!is_part_path(
            "email/welcome/body.txt",
            "invitation",
            "body.txt"
        ));
        assert!(!is_part_path(
            "email/welcome/body.txt.bak",
            "welcome",
            "body.txt"
        ));
    }

    #[test]
    fn build_message_is_multipart_alternative_with_the_message_id() {
        let email = VerifyEmail {
            name: s("Ada"),
            link: s("https://x.test/v"),
            expires_hours: 2,
        }
        .render()
        .unwrap();
        let from: Mailbox = "Tenantkit <no-reply@tenantkit.test>".parse().unwrap();
        let to: Mailbox = "Ada <ada@example.test>".parse().unwrap();
        let id = s("<verify.1@tenantkit.test>");
        let message = build_message(&from, to, id.clone(), &email).unwrap();
        let bytes = String::from_utf8(message.formatted()).unwrap();
        assert!(bytes.contains("multipart/alternative"), "{bytes}");
        let plain = bytes.find("text/plain").expect("a text/plain part");
        let html = bytes.find("text/html").expect("a text/html part");
        assert!(plain < html, "text part comes first");
        assert!(bytes.contains(&format!("Message-ID: {id}")), "{bytes}");
        assert!(
            bytes.contains("Subject: Confirm your email address"),
            "{bytes}"
        );
    }
}
