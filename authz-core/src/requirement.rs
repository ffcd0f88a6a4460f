//! Requirements: what a handler demands of a principal, as types (so the macros can put them in
//! a guard's type) and as a run-time description (for route tables and lints).

use std::fmt;
use std::marker::PhantomData;

use crate::catalog::{Catalog, PermissionId};
use crate::policy::Policy;
use crate::principal::Principal;

/// A requirement expressed as a type.
pub trait Requirement: Send + Sync + 'static {
    /// Whether `principal` meets the requirement, with indices from catalog `C`.
    fn is_met<C: Catalog>(principal: &Principal) -> bool;
    /// The requirement as data.
    fn describe<C: Catalog>() -> RequirementExpr;
}

/// A list of requirements (a tuple), for [`All`] and [`AnyOf`].
pub trait RequirementList: Send + Sync + 'static {
    /// Whether all are met.
    fn all<C: Catalog>(principal: &Principal) -> bool;
    /// Whether any is met.
    fn any<C: Catalog>(principal: &Principal) -> bool;
    /// Each, as data.
    fn describe_each<C: Catalog>() -> Vec<RequirementExpr>;
}

/// The permission with index `I` in the catalog.
pub struct Perm<const I: usize>;
/// The role with index `I` in the catalog's declared roles.
pub struct Role<const I: usize>;
/// Every requirement of the tuple `T`.
pub struct All<T>(PhantomData<T>);
/// At least one requirement of the tuple `T`.
pub struct AnyOf<T>(PhantomData<T>);
/// The requirement `T` is not met.
pub struct Not<T>(PhantomData<T>);
/// Only authentication: any verified principal.
pub struct Authenticated;

impl<const I: usize> Requirement for Perm<I> {
    #[inline]
    fn is_met<C: Catalog>(principal: &Principal) -> bool {
        principal.can(PermissionId::new(I))
    }
    fn describe<C: Catalog>() -> RequirementExpr {
        RequirementExpr::Permission(C::PERMISSIONS[I].to_string())
    }
}

impl<const I: usize> Requirement for Role<I> {
    fn is_met<C: Catalog>(principal: &Principal) -> bool {
        principal.has_role(C::ROLES[I])
    }
    fn describe<C: Catalog>() -> RequirementExpr {
        RequirementExpr::Role(C::ROLES[I].to_string())
    }
}

impl<T: RequirementList> Requirement for All<T> {
    #[inline]
    fn is_met<C: Catalog>(principal: &Principal) -> bool {
        T::all::<C>(principal)
    }
    fn describe<C: Catalog>() -> RequirementExpr {
        RequirementExpr::All(T::describe_each::<C>())
    }
}

impl<T: RequirementList> Requirement for AnyOf<T> {
    #[inline]
    fn is_met<C: Catalog>(principal: &Principal) -> bool {
        T::any::<C>(principal)
    }
    fn describe<C: Catalog>() -> RequirementExpr {
        RequirementExpr::Any(T::describe_each::<C>())
    }
}

impl<T: Requirement> Requirement for Not<T> {
    #[inline]
    fn is_met<C: Catalog>(principal: &Principal) -> bool {
        !T::is_met::<C>(principal)
    }
    fn describe<C: Catalog>() -> RequirementExpr {
        RequirementExpr::Not(Box::new(T::describe::<C>()))
    }
}

impl Requirement for Authenticated {
    fn is_met<C: Catalog>(_: &Principal) -> bool {
        true
    }
    fn describe<C: Catalog>() -> RequirementExpr {
        RequirementExpr::Authenticated
    }
}

macro_rules! tuple_list {
    ($($t:ident),+) => {
        impl<$($t: Requirement),+> RequirementList for ($($t,)+) {
            #[inline]
            fn all<C: Catalog>(principal: &Principal) -> bool {
                $($t::is_met::<C>(principal))&&+
            }
            #[inline]
            fn any<C: Catalog>(principal: &Principal) -> bool {
                $($t::is_met::<C>(principal))||+
            }
            fn describe_each<C: Catalog>() -> Vec<RequirementExpr> {
                vec![$($t::describe::<C>()),+]
            }
        }
    };
}
tuple_list!(A);
tuple_list!(A, B);
tuple_list!(A, B, D);
tuple_list!(A, B, D, E);
tuple_list!(A, B, D, E, F);
tuple_list!(A, B, D, E, F, G);
tuple_list!(A, B, D, E, F, G, H);
tuple_list!(A, B, D, E, F, G, H, I);
tuple_list!(A, B, D, E, F, G, H, I, J);
tuple_list!(A, B, D, E, F, G, H, I, J, K);
tuple_list!(A, B, D, E, F, G, H, I, J, K, L);
tuple_list!(A, B, D, E, F, G, H, I, J, K, L, M);

/// What a route demands, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequirementExpr {
    /// Nothing: the route is public.
    Public,
    /// Any authenticated principal.
    Authenticated,
    /// One permission.
    Permission(String),
    /// One role (directly or by inheritance).
    Role(String),
    /// All of these.
    All(Vec<RequirementExpr>),
    /// At least one of these.
    Any(Vec<RequirementExpr>),
    /// Not this.
    Not(Box<RequirementExpr>),
}

impl RequirementExpr {
    /// Every permission the expression names.
    pub fn permissions(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let RequirementExpr::Permission(p) = e {
                out.push(p.as_str());
            }
        });
        out
    }

    fn walk<'a>(&'a self, f: &mut impl FnMut(&'a RequirementExpr)) {
        f(self);
        match self {
            RequirementExpr::All(v) | RequirementExpr::Any(v) => v.iter().for_each(|e| e.walk(f)),
            RequirementExpr::Not(e) => e.walk(f),
            _ => {}
        }
    }

    /// Whether a principal holding exactly `role` (with inheritance) would meet the requirement.
    pub fn satisfied_by_role(&self, policy: &Policy, role: &str) -> bool {
        let resolved = policy.resolve([role]);
        self.eval(&|p| resolved.contains_name(p), &|r| {
            resolved.effective_roles.iter().any(|e| &**e == r)
        })
    }

    /// Evaluates with the given permission and role tests.
    pub fn eval(&self, has_permission: &dyn Fn(&str) -> bool, has_role: &dyn Fn(&str) -> bool) -> bool {
        match self {
            RequirementExpr::Public | RequirementExpr::Authenticated => true,
            RequirementExpr::Permission(p) => has_permission(p),
            RequirementExpr::Role(r) => has_role(r),
            RequirementExpr::All(v) => v.iter().all(|e| e.eval(has_permission, has_role)),
            RequirementExpr::Any(v) => v.iter().any(|e| e.eval(has_permission, has_role)),
            RequirementExpr::Not(e) => !e.eval(has_permission, has_role),
        }
    }
}

impl fmt::Display for RequirementExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list(f: &mut fmt::Formatter<'_>, name: &str, v: &[RequirementExpr]) -> fmt::Result {
            write!(f, "{name}(")?;
            for (i, e) in v.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{e}")?;
            }
            f.write_str(")")
        }
        match self {
            RequirementExpr::Public => f.write_str("public"),
            RequirementExpr::Authenticated => f.write_str("authenticated"),
            RequirementExpr::Permission(p) => write!(f, "{p:?}"),
            RequirementExpr::Role(r) => write!(f, "role({r:?})"),
            RequirementExpr::All(v) => list(f, "all", v),
            RequirementExpr::Any(v) => list(f, "any", v),
            RequirementExpr::Not(e) => write!(f, "not({e})"),
        }
    }
}
