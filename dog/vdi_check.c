/* Placeholder: being written. */
#include "dog.h"

int vdi_check(int argc, char **argv)
{
	sd_err("not implemented yet");
	return EXIT_SYSFAIL;
}

