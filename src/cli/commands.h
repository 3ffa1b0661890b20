#ifndef AB_CLI_COMMANDS_H
#define AB_CLI_COMMANDS_H

/* Each subcommand gets the arguments after its name and returns the process exit code. */
int cmd_run(int argc, char **argv);

#endif
