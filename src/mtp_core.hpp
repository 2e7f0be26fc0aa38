// mtpkit compiled core: MTP energies, forces, virials, parameter gradients.
#pragma once
namespace mtpkit {
int core_version();
}
