//! Interning of claim owners (reservation and job ids) to small integer ids that are recycled once
//! an owner holds no claim any more.

use std::collections::HashMap;

/// One live owner: its name and the devices on which it holds at least one claim.
#[derive(Debug, Clone, Default)]
pub struct Owner {
    /// The owner's id as the caller knows it.
    pub name: String,
    /// Devices (cluster device ids) on which the owner holds claims, in first-claim order.
    pub devices: Vec<u32>,
}

/// The table of live owners.
#[derive(Debug, Clone, Default)]
pub struct Owners {
    ids: HashMap<String, u32>,
    entries: Vec<Owner>,
    free: Vec<u32>,
}

impl Owners {
    /// The id of `name`, if it is live.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The id of `name`, allocating (or recycling) one if needed.
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let owner = Owner {
            name: name.to_owned(),
            devices: Vec::new(),
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.entries[id as usize] = owner;
                id
            }
            None => {
                self.entries.push(owner);
                (self.entries.len() - 1) as u32
            }
        };
        self.ids.insert(name.to_owned(), id);
        id
    }

    /// The owner behind a live id.
    pub fn entry(&self, id: u32) -> &Owner {
        &self.entries[id as usize]
    }

    /// The owner behind a live id, mutably.
    pub fn entry_mut(&mut self, id: u32) -> &mut Owner {
        &mut self.entries[id as usize]
    }

    /// Records that `owner` holds a claim on `device`.
    pub fn note_device(&mut self, owner: u32, device: u32) {
        let devices = &mut self.entries[owner as usize].devices;
        if !devices.contains(&device) {
            devices.push(device);
        }
    }

    /// Forgets `id` so it can be recycled; its name is no longer live.
    pub fn release(&mut self, id: u32) {
        let entry = std::mem::take(&mut self.entries[id as usize]);
        self.ids.remove(&entry.name);
        self.free.push(id);
    }

    /// Whether `id` names a live owner.
    pub fn is_live(&self, id: u32) -> bool {
        self.entries
            .get(id as usize)
            .is_some_and(|e| self.ids.get(&e.name) == Some(&id))
    }

    /// Number of live owners.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no owner is live.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_recycled() {
        let mut o = Owners::default();
        let a = o.intern("res-a");
        let b = o.intern("job-b");
        assert_ne!(a, b);
        assert_eq!(o.intern("res-a"), a);
        o.note_device(a, 7);
        o.note_device(a, 7);
        o.note_device(a, 3);
        assert_eq!(o.entry(a).devices, vec![7, 3]);
        o.release(a);
        assert!(!o.is_live(a) && o.get("res-a").is_none());
        let c = o.intern("job-c");
        assert_eq!(c, a, "released ids are recycled");
        assert!(o.entry(c).devices.is_empty());
        assert_eq!(o.len(), 2);
    }
}
