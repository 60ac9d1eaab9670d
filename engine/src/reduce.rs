//! REDUCE: a streaming fold over visible pieces.
//!
//! The fold sees pieces one at a time, in time order, straight out of the sweep, so a
//! REDUCE over a million pieces allocates nothing. Int folds are exact (i128 inside,
//! an error only if the final result does not fit i64); float folds add left to right.

use crate::ast::Func;
use crate::catalog::Res;
use crate::expr::{compare, float_ok, overflow};
use crate::value::Value;
use std::cmp::Ordering;

pub struct Fold<'a> {
    func: Func,
    pieces: i64,
    /// Non-null pieces folded into the numeric accumulators.
    nonnull: i64,
    len_all: i128,
    len_nonnull: i128,
    isum: i128,
    fsum: f64,
    saw_float: bool,
    pick: Option<&'a Value>,
    overflowed: bool,
    type_error: bool,
}

impl<'a> Fold<'a> {
    pub fn new(func: Func) -> Fold<'a> {
        Fold {
            func,
            pieces: 0,
            nonnull: 0,
            len_all: 0,
            len_nonnull: 0,
            isum: 0,
            fsum: 0.0,
            saw_float: false,
            pick: None,
            overflowed: false,
            type_error: false,
        }
    }

    #[inline]
    pub fn push(&mut self, s: i64, e: i64, v: &'a Value) {
        debug_assert!(s < e);
        self.pieces += 1;
        let len = e as i128 - s as i128;
        self.len_all += len;
        match self.func {
            Func::Count | Func::Duration => {}
            Func::First => {
                if self.pick.is_none() {
                    self.pick = Some(v);
                }
            }
            Func::Last => self.pick = Some(v),
            Func::Min | Func::Max => {
                if matches!(v, Value::Null) {
                    return;
                }
                let better = match self.pick {
                    None => true,
                    Some(p) => match compare(v, p) {
                        Ok(o) => {
                            o == if self.func == Func::Min {
                                Ordering::Less
                            } else {
                                Ordering::Greater
                            }
                        }
                        Err(_) => {
                            self.type_error = true;
                            false
                        }
                    },
                };
                if better {
                    self.pick = Some(v);
                }
                self.nonnull += 1;
            }
            Func::Sum | Func::Avg | Func::Twavg | Func::Integral => {
                let weight = matches!(self.func, Func::Twavg | Func::Integral);
                match v {
                    Value::Null => return,
                    Value::Int(i) => {
                        if weight {
                            match (*i as i128)
                                .checked_mul(len)
                                .and_then(|x| x.checked_add(self.isum))
                            {
                                Some(x) => self.isum = x,
                                None => self.overflowed = true,
                            }
                        } else {
                            self.isum += *i as i128;
                        }
                    }
                    Value::Float(f) => {
                        self.saw_float = true;
                        self.fsum += if weight { f * len as f64 } else { *f };
                    }
                    _ => self.type_error = true,
                }
                self.nonnull += 1;
                self.len_nonnull += len;
            }
        }
    }

    /// The result; `None` is NIL.
    pub fn finish(self) -> Res<Option<Value>> {
        if self.type_error {
            return Err(format!(
                "invalid expression: {}() needs numbers",
                self.func.name()
            ));
        }
        if self.overflowed {
            return Err(overflow());
        }
        let int = |x: i128| i64::try_from(x).map(Value::Int).map_err(|_| overflow());
        // Mixed ints and floats only arise from derived lenses; the float sum then gets
        // the exact int part added once.
        let total = |s: &Self| s.fsum + s.isum as f64;
        Ok(match self.func {
            Func::Count => Some(Value::Int(self.pieces)),
            Func::Duration => Some(int(self.len_all)?),
            Func::First | Func::Last | Func::Min | Func::Max => self.pick.cloned(),
            _ if self.nonnull == 0 => None,
            Func::Sum | Func::Integral => Some(if self.saw_float {
                float_ok(total(&self))?
            } else {
                int(self.isum)?
            }),
            Func::Avg => Some(float_ok(total(&self) / self.nonnull as f64)?),
            Func::Twavg => Some(float_ok(total(&self) / self.len_nonnull as f64)?),
        })
    }
}
