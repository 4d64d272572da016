// Package check validates the Kubernetes manifests of deploy/kubernetes offline: `go test ./...` in
// this directory builds every kustomization with kustomize's own library, decodes each object
// strictly into the Kubernetes API's Go types (CloudNativePG's Cluster against its CRD's schema), and
// holds the result to the service's code: its routes, its settings and their validation, the user of
// its image, its shutdown deadline.
//
// It is a module of its own so that Kubernetes' and kustomize's dependencies stay out of the
// service's go.mod; a replace directive points it at the repository, and because its import path is
// under github.com/merchant/o2o it may import the service's internal packages.
package check
