# The cluster's DNS names as a hosts file for dnsmasq, from a List of the API's
# Services and Endpoints (`kubectl get services,endpoints -A -o json`):
#   a Service with a cluster IP:  IP NAME.NS.svc.cluster.local
#   a headless Service:           each ready endpoint's IP under NAME.NS.svc.cluster.local,
#                                 and HOSTNAME.NAME.NS.svc.cluster.local when the pod has
#                                 a hostname (a StatefulSet's pods: x-0.x.NS.svc...)
(.items | map(select(.kind == "Service" and .spec.clusterIP == "None")
              | "\(.metadata.namespace)/\(.metadata.name)")) as $headless
| .items[]
| if .kind == "Service" then
    select((.spec.clusterIP // "") != "" and .spec.clusterIP != "None")
    | "\(.spec.clusterIP) \(.metadata.name).\(.metadata.namespace).svc.cluster.local"
  else
    .metadata as $m
    | select("\($m.namespace)/\($m.name)" as $k | $headless | any(. == $k))
    | (.subsets // [])[] | (.addresses // [])[]
    | "\(.ip) \($m.name).\($m.namespace).svc.cluster.local"
      + (if .hostname then " \(.hostname).\($m.name).\($m.namespace).svc.cluster.local" else "" end)
  end
