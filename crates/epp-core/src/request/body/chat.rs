//! Chat `messages`, decoded in the body's one pass and turned into v1.0.1's chat template.
//!
//! Lenient by design: whatever shape `messages` has, the body only has to be valid JSON.
//! A list that is not made of message objects is no prompt source (the request is routed
//! by load), never a 400.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::TextOrParts;

/// `messages`. `Invalid` when it is not a list of objects whose `role` is a string or
/// null: one such element spoils the list, as a failed `[]Message` decode would.
pub(super) enum Messages<'a> {
    List(Vec<Message<'a>>),
    Invalid,
}

/// One chat message; other keys (`name`, `tool_calls`, ...) are skipped, and a repeated
/// key keeps its last value, as Go's `encoding/json` does.
#[derive(Default)]
pub(super) struct Message<'a> {
    role: Option<Cow<'a, str>>,
    content: Option<TextOrParts<'a>>,
}

impl Messages<'_> {
    /// v1.0.1's template: `<|im_start|>{role}\n{content}<|im_end|>\n` for each message that
    /// has a role and text content; `None` for an empty or invalid list.
    pub(super) fn into_chat_template(self) -> Option<String> {
        let Messages::List(messages) = self else {
            return None;
        };
        if messages.is_empty() {
            return None;
        }
        let mut prompt = String::new();
        for message in &messages {
            let (Some(role), Some(content)) = (&message.role, &message.content) else {
                continue;
            };
            let Some(text) = content.text() else { continue };
            prompt.push_str("<|im_start|>");
            prompt.push_str(role);
            prompt.push('\n');
            prompt.push_str(&text);
            prompt.push_str("<|im_end|>\n");
        }
        Some(prompt)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Messages<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MessagesVisitor(std::marker::PhantomData))
    }
}

struct MessagesVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for MessagesVisitor<'a> {
    type Value = Messages<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of chat messages")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut messages = Vec::new();
        let mut valid = true;
        while let Some(MaybeMessage(message)) = seq.next_element()? {
            match message {
                Some(message) if valid => messages.push(message),
                // Keep reading: the rest of the list must still be valid JSON.
                _ => valid = false,
            }
        }
        Ok(if valid {
            Messages::List(messages)
        } else {
            Messages::Invalid
        })
    }

    visit_as!(Messages::Invalid; map, str, unit, bool, i64, u64, f64);
}

/// One list element: `Some` for a message object, `None` for anything else.
struct MaybeMessage<'a>(Option<Message<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for MaybeMessage<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MessageVisitor(std::marker::PhantomData))
    }
}

struct MessageVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for MessageVisitor<'a> {
    type Value = MaybeMessage<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a chat message")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut message = Message::default();
        let mut valid = true;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "role" => match map.next_value()? {
                    Role::Text(role) => message.role = Some(role),
                    Role::Null => message.role = None,
                    Role::Other => valid = false,
                },
                "content" => message.content = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(MaybeMessage(valid.then_some(message)))
    }

    visit_as!(MaybeMessage(None); seq, str, unit, bool, i64, u64, f64);
}

/// A message's `role`: a string (borrowed when unescaped), null, or something else.
enum Role<'a> {
    Text(Cow<'a, str>),
    Null,
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Role<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RoleVisitor(std::marker::PhantomData))
    }
}

struct RoleVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for RoleVisitor<'a> {
    type Value = Role<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a role")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Role::Text(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Role::Text(Cow::Owned(v.to_owned())))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Role::Null)
    }

    visit_as!(Role::Other; seq, map, bool, i64, u64, f64);
}
