// Package deploy holds the tests of the deployment files at the top of the
// repository: docker-compose.yml with its override files, and the
// Dockerfile. No Docker engine runs where the tests run, so they read the
// files the way compose and docker would (YAML anchors and merge keys,
// variable interpolation, compose's merge of override files with !reset
// and !override; Dockerfile stages, RUN, COPY, ENV and USER) and check
// them against the code: the settings configs knows, the programs under
// cmd/, and wire.LoadFrom on the environment each service would get.
//
// It lives under cmd/ because only cmd/ may import configs.
package deploy
