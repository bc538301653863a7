//! How a path reads and writes a User held as a JSON object: keys matched
//! ignoring case (RFC 7643 §2.1), containers made and emptied as needed.

use serde_json::{Map, Value};

use super::UserAttr;

impl UserAttr {
    /// The attribute's value in `user` (a User as JSON); `null` is absent.
    pub fn value_in<'a>(&self, user: &'a Value) -> Option<&'a Value> {
        let target = self.element_in(user)?;
        let value = match &self.0.sub {
            Some(sub) => get_ci(target, sub)?,
            None => target,
        };
        (!value.is_null()).then_some(value)
    }

    /// The top-level attribute the path is in (a whole list, for a
    /// filtered path), as held in `user`.
    pub(crate) fn attribute_in<'a>(&self, user: &'a Value) -> Option<&'a Value> {
        let container = match &self.0.schema {
            Some(urn) => get_ci(user, urn)?,
            None => user,
        };
        get_ci(container, &self.0.name)
    }

    /// The attribute, or for a filtered path the element its filter
    /// selects, as held in `user` (before any sub-attribute).
    pub(crate) fn element_in<'a>(&self, user: &'a Value) -> Option<&'a Value> {
        let attr = self.attribute_in(user)?;
        match &self.0.filter {
            Some(filter) => element(attr.as_array()?, filter),
            None => Some(attr),
        }
    }

    /// Sets (or with `None` removes) the attribute in `user` (a User as
    /// JSON object), creating the extension object, complex attribute or
    /// filtered element it needs. Removing the last sub-attribute of a
    /// filtered element removes the element; emptied containers go too.
    pub fn set_in(&self, user: &mut Map<String, Value>, value: Option<Value>) {
        match value.filter(|v| !v.is_null()) {
            Some(value) => self.put(user, value),
            None => self.clear(user),
        }
    }

    fn put(&self, user: &mut Map<String, Value>, value: Value) {
        let container = match &self.0.schema {
            Some(urn) => object_ci(user, urn),
            None => Some(user),
        };
        let Some(container) = container else { return };
        let Some((fattr, fvalue)) = &self.0.filter else {
            match &self.0.sub {
                Some(sub) => {
                    if let Some(complex) = object_ci(container, &self.0.name) {
                        insert_ci(complex, sub, value);
                    }
                }
                None => insert_ci(container, &self.0.name, value),
            }
            return;
        };
        let Some(list) = array_ci(container, &self.0.name) else { return };
        let index = position(list, (fattr, fvalue)).unwrap_or_else(|| {
            let mut fresh = Map::new();
            fresh.insert(fattr.clone(), Value::String(fvalue.clone()));
            fresh.insert("primary".to_owned(), Value::Bool(list.is_empty()));
            list.push(Value::Object(fresh));
            list.len() - 1
        });
        match (&self.0.sub, &mut list[index]) {
            (Some(sub), Value::Object(element)) => insert_ci(element, sub, value),
            (_, slot) => *slot = value,
        }
    }

    fn clear(&self, user: &mut Map<String, Value>) {
        let Some(container) = (match &self.0.schema {
            Some(urn) => key_ci(user, urn).and_then(|k| user.get_mut(&k)).and_then(Value::as_object_mut),
            None => Some(&mut *user),
        }) else {
            return;
        };
        let Some(name) = key_ci(container, &self.0.name) else { return };
        match (&self.0.filter, &self.0.sub) {
            (None, None) => {
                container.remove(&name);
            }
            (None, Some(sub)) => {
                if let Some(Value::Object(complex)) = container.get_mut(&name) {
                    remove_ci(complex, sub);
                }
            }
            (Some((fattr, fvalue)), sub) => {
                if let Some(Value::Array(list)) = container.get_mut(&name)
                    && let Some(i) = position(list, (fattr, fvalue))
                {
                    let emptied = match (sub, &mut list[i]) {
                        (Some(sub), Value::Object(element)) => {
                            remove_ci(element, sub);
                            // What is left says only which element it was.
                            element.keys().all(|k| k.eq_ignore_ascii_case(fattr) || k == "primary")
                        }
                        _ => true,
                    };
                    if emptied {
                        list.remove(i);
                    }
                }
            }
        }
        let empty = match container.get(&name) {
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(o)) => o.is_empty(),
            _ => false,
        };
        if empty {
            container.remove(&name);
        }
        if let Some(urn) = &self.0.schema
            && let Some(key) = key_ci(user, urn)
            && user.get(&key).and_then(Value::as_object).is_some_and(Map::is_empty)
        {
            user.remove(&key);
        }
    }
}

/// The element `filter` selects; a lone element without the filtered
/// sub-attribute counts too, since some providers drop `type`.
fn element<'a>(list: &'a [Value], filter: &(String, String)) -> Option<&'a Value> {
    position(list, (&filter.0, &filter.1)).map(|i| &list[i])
}

fn position(list: &[Value], (attr, value): (&str, &str)) -> Option<usize> {
    let matches =
        |v: &Value| get_ci(v, attr).and_then(Value::as_str).is_some_and(|s| s.eq_ignore_ascii_case(value));
    list.iter().position(matches).or_else(|| match list {
        [only] if get_ci(only, attr).is_none() => Some(0),
        _ => None,
    })
}

fn key_ci(map: &Map<String, Value>, key: &str) -> Option<String> {
    if map.contains_key(key) {
        return Some(key.to_owned());
    }
    map.keys().find(|k| k.eq_ignore_ascii_case(key)).cloned()
}

/// `value[key]`, matching the key ignoring case.
pub(crate) fn get_ci<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    let map = value.as_object()?;
    map.get(key).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

fn insert_ci(map: &mut Map<String, Value>, key: &str, value: Value) {
    let key = key_ci(map, key).unwrap_or_else(|| key.to_owned());
    map.insert(key, value);
}

fn remove_ci(map: &mut Map<String, Value>, key: &str) {
    if let Some(key) = key_ci(map, key) {
        map.remove(&key);
    }
}

/// `map[key]` as an object, made one (replacing a non-object) if need be.
fn object_ci<'a>(map: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    let slot = slot_ci(map, key);
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

/// `map[key]` as an array, made one (replacing a non-array) if need be.
fn array_ci<'a>(map: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Vec<Value>> {
    let slot = slot_ci(map, key);
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    slot.as_array_mut()
}

fn slot_ci<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Value {
    let key = key_ci(map, key).unwrap_or_else(|| key.to_owned());
    map.entry(key).or_insert(Value::Null)
}
