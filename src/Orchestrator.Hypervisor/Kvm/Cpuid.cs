// Per-vCPU CPUID from KVM_GET_SUPPORTED_CPUID: what the host offers, with this vCPU's APIC id and a flat topology
// (one thread per core, all cores in one package) instead of the host's, and the hypervisor bit set so Linux uses
// kvm-clock and paravirtual features without probing.
namespace Orchestrator.Hypervisor.Kvm;

internal static class Cpuid
{
    public const uint HypervisorBit = 1u << 31; // leaf 1 ECX
    public const uint HttBit = 1u << 28;        // leaf 1 EDX: "more than one logical processor per package" is valid

    private const uint LevelTypeSmt = 1;
    private const uint LevelTypeCore = 2;

    public static KvmCpuidEntry2[] ForVcpu(IReadOnlyList<KvmCpuidEntry2> supported, int index, int count)
    {
        var apicId = (uint)index;
        var coreBits = (uint)Math.Ceiling(Math.Log2(Math.Max(count, 1)));
        var entries = new KvmCpuidEntry2[supported.Count];
        for (var i = 0; i < supported.Count; i++)
        {
            var entry = supported[i];
            switch (entry.function)
            {
                case 1:
                    // EBX: [31:24] initial APIC id, [23:16] logical processors per package, [15:8] CLFLUSH line / 8.
                    entry.ebx = (apicId << 24) | ((uint)Math.Min(count, 255) << 16) | (8u << 8) | (entry.ebx & 0xff);
                    entry.ecx |= HypervisorBit;
                    entry.edx = count > 1 ? entry.edx | HttBit : entry.edx & ~HttBit;
                    break;
                case 0xb:
                case 0x1f:
                    // Extended topology: level 0 SMT (1 thread per core), level 1 core (count cores), then invalid.
                    entry.edx = apicId;
                    switch (entry.index)
                    {
                        case 0:
                            entry.eax = 0;
                            entry.ebx = 1;
                            entry.ecx = (LevelTypeSmt << 8) | entry.index;
                            break;
                        case 1:
                            entry.eax = coreBits;
                            entry.ebx = (uint)count;
                            entry.ecx = (LevelTypeCore << 8) | entry.index;
                            break;
                        default:
                            entry.eax = 0;
                            entry.ebx = 0;
                            entry.ecx = entry.index;
                            break;
                    }

                    break;
            }

            entries[i] = entry;
        }

        return entries;
    }
}
