# The deploy rule of the model registry (policy "deploy", named on the handler:
# #[require_permission("model:deploy", policy = "deploy")]). Asked only for callers that hold
# model:deploy; see authz_core::engine::Input for the input document.
#
#   admins deploy any model, to any environment;
#   analysts deploy only their own models, and only to staging.
#
# `input.resource.attributes.owner` is the owner of the model the registry loaded for this
# request (`#[authorize]` on the handler, after the tenant check); were it null, the analyst
# rule could not match and analysts would be denied (never let through on a missing fact).
package authz.deploy

import rego.v1

default allow := false

allow if "admin" in input.principal.effective_roles

allow if {
	"analyst" in input.principal.effective_roles
	input.context.environment == "staging"
	input.resource.attributes.owner == input.principal.subject
}

reasons contains "analysts deploy only to staging" if {
	not allow
	input.context.environment != "staging"
}

reasons contains "analysts deploy only their own models" if {
	not allow
	not input.resource.attributes.owner == input.principal.subject
}
