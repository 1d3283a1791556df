/* Placeholder: being written. */
#include "dog.h"

int vdi_tree(int argc, char **argv)
{
	sd_err("not implemented yet");
	return EXIT_SYSFAIL;
}

int vdi_graph(int argc, char **argv)
{
	sd_err("not implemented yet");
	return EXIT_SYSFAIL;
}

int vdi_object(int argc, char **argv)
{
	sd_err("not implemented yet");
	return EXIT_SYSFAIL;
}

int vdi_track(int argc, char **argv)
{
	sd_err("not implemented yet");
	return EXIT_SYSFAIL;
}

int vdi_setattr(int argc, char **argv)
{
	sd_err("not implemented yet");
	return EXIT_SYSFAIL;
}

int vdi_getattr(int argc, char **argv)
{
	sd_err("not implemented yet");
	return EXIT_SYSFAIL;
}

int vdi_lock(int argc, char **argv)
{
	sd_err("not implemented yet");
	return EXIT_SYSFAIL;
}

int vdi_alter_copy(int argc, char **argv)
{
	sd_err("not implemented yet");
	return EXIT_SYSFAIL;
}

