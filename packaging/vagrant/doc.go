// Package vagrant holds the Vagrant box of the Portcullis appliance:
// make-box.sh (run by `make box`) packs the appliance image from
// packaging/image with metadata.json and box.Vagrantfile (libvirt provider
// defaults) into bin/portcullis-appliance.box, which the top-level
// Vagrantfile boots. It has no Go code; its test, TestVagrantUp
// (`make box-test`), runs vagrant up, one check over SSH and vagrant destroy
// with libvirt's qemu driver.
package vagrant
