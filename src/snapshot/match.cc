// placeholder: implementation in progress
#include "snapshot/match.h"
