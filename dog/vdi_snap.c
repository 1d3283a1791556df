/* Placeholder: being written. */
#include "dog.h"

int vdi_snapshot(int argc, char **argv)
{
	sd_err("not implemented yet");
	return EXIT_SYSFAIL;
}

int vdi_clone(int argc, char **argv)
{
	sd_err("not implemented yet");
	return EXIT_SYSFAIL;
}

int vdi_rollback(int argc, char **argv)
{
	sd_err("not implemented yet");
	return EXIT_SYSFAIL;
}

