// Command bastion is the gate's SSH jump host: admins reach the site's
// servers with `ssh -J admin@<vps>:2222 ceph-1`. It listens on the gate's
// tunnel addresses (and on the LAN if bastion.listen_lan), see
// internal/bastion.
package main

import "gate/internal/mains"

func main() { mains.Bastion() }
