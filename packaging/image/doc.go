// Package image holds the recipe of the Portcullis appliance's disk image:
// build-image.sh (run by `make image`) makes a qcow2 of a minimal Debian 13
// system from Debian's packages with mmdebstrap (packages.list), the
// portcullis .deb and the files under rootfs/ (first-boot configuration of
// the gateway role, its report on the console, GRUB on the serial console),
// with no loop device. It has no Go code; its test, TestApplianceVM
// (`make vm-test`), boots the image under qemu between a client and an origin
// network namespace and checks the appliance through the real VM.
package image
