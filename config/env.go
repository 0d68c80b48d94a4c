package config

import (
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// evalContext is what expressions in a configuration file can use: the env
// function and the env object.
func evalContext() *hcl.EvalContext {
	vars := map[string]cty.Value{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && hclsyntaxValidName(k) {
			vars[k] = cty.StringVal(v)
		}
	}
	return &hcl.EvalContext{
		Variables: map[string]cty.Value{"env": cty.ObjectVal(vars)},
		Functions: map[string]function.Function{"env": envFunc},
	}
}

// hclsyntaxValidName reports whether name can follow "env." in HCL.
// Other variables are reachable with env("NAME") only.
func hclsyntaxValidName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r == '-' || r >= '0' && r <= '9'):
		default:
			return false
		}
	}
	return true
}

// envFunc is env(NAME) or env(NAME, DEFAULT): the value of an environment
// variable, the default if it is unset, and an error if it is unset and there
// is no default. A variable set to the empty string is set.
var envFunc = function.New(&function.Spec{
	Description: "Returns the value of an environment variable.",
	Params: []function.Parameter{
		{Name: "name", Type: cty.String},
	},
	VarParam: &function.Parameter{Name: "default", Type: cty.String},
	Type:     function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		if len(args) > 2 {
			return cty.NilVal, function.NewArgErrorf(2, "env takes a name and at most one default value")
		}
		name := args[0].AsString()
		if v, ok := os.LookupEnv(name); ok {
			return cty.StringVal(v), nil
		}
		if len(args) == 2 {
			return args[1], nil
		}
		return cty.NilVal, function.NewArgErrorf(0, "%s", unsetEnv(name))
	},
})

// unsetEnv says that the environment variable name is not set, and how to
// give it a default.
func unsetEnv(name string) string {
	return fmt.Sprintf("environment variable %s is not set; set it, or give a default: env(%q, \"DEFAULT\")", name, name)
}

// envDiagnostics rewrites the errors of env.NAME and env["NAME"] for a
// variable that is not set, which HCL reports as an attribute the env
// object does not have ("Unsupported attribute", "Invalid index"), to name
// the variable and say how to give it a default, as env("NAME") does. The
// diagnostic keeps its range: the .NAME of the expression.
func envDiagnostics(diags hcl.Diagnostics) {
	for _, diag := range diags {
		e, ok := diag.Expression.(*hclsyntax.ScopeTraversalExpr)
		if !ok || e.Traversal.RootName() != "env" || len(e.Traversal) < 2 {
			continue
		}
		var name string
		switch t := e.Traversal[1].(type) {
		case hcl.TraverseAttr:
			name = t.Name
		case hcl.TraverseIndex:
			if t.Key.Type() == cty.String && t.Key.IsKnown() && !t.Key.IsNull() {
				name = t.Key.AsString()
			}
		}
		if _, set := os.LookupEnv(name); name == "" || set {
			continue
		}
		diag.Summary = "Environment variable not set"
		diag.Detail = unsetEnv(name) + "."
	}
}
