// The opened /dev/kvm of a node: API version and capabilities checked once, the vCPU mmap size and the host's
// supported CPUID cached. Shared by every VM of a driver (system ioctls are thread-safe).
namespace Orchestrator.Hypervisor.Kvm;

internal sealed class KvmSystem : IDisposable
{
    private static readonly (int Capability, string Name)[] Required =
    [
        (KvmCap.KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"),
        (KvmCap.KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"),
        (KvmCap.KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"),
        (KvmCap.KVM_CAP_PIT2, "KVM_CAP_PIT2"),
        (KvmCap.KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"),
        (KvmCap.KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"),
    ];

    private readonly Lazy<KvmCpuidEntry2[]> _supportedCpuid;

    private KvmSystem(KvmSystemHandle handle, int vcpuMmapSize, int maxVcpus)
    {
        Handle = handle;
        VcpuMmapSize = vcpuMmapSize;
        MaxVcpus = maxVcpus;
        _supportedCpuid = new Lazy<KvmCpuidEntry2[]>(handle.GetSupportedCpuid);
    }

    public KvmSystemHandle Handle { get; }

    public int VcpuMmapSize { get; }

    public int MaxVcpus { get; }

    public IReadOnlyList<KvmCpuidEntry2> SupportedCpuid => _supportedCpuid.Value;

    /// <summary>Opens and checks /dev/kvm; throws <see cref="HypervisorException"/> saying what is missing.</summary>
    public static KvmSystem Open()
    {
        var handle = KvmSystemHandle.Open();
        try
        {
            var version = handle.GetApiVersion();
            if (version != KvmIoctls.ApiVersion)
            {
                throw new HypervisorException($"{KvmSystemHandle.DevicePath} speaks KVM API {version}, not {KvmIoctls.ApiVersion}");
            }

            foreach (var (capability, name) in Required)
            {
                if (handle.CheckExtension(capability) <= 0)
                {
                    throw new HypervisorException($"{KvmSystemHandle.DevicePath} lacks {name}, which this engine needs");
                }
            }

            // KVM_CAP_MAX_VCPUS is the hard limit; older kernels only answer KVM_CAP_NR_VCPUS (the recommended one).
            var maxVcpus = handle.CheckExtension(KvmCap.KVM_CAP_MAX_VCPUS);
            if (maxVcpus <= 0)
            {
                maxVcpus = Math.Max(handle.CheckExtension(KvmCap.KVM_CAP_NR_VCPUS), 4);
            }

            return new KvmSystem(handle, handle.GetVcpuMmapSize(), maxVcpus);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Whether this host can run the engine; <paramref name="reason"/> says why not.</summary>
    public static bool IsAvailable(out string reason)
    {
        if (!OperatingSystem.IsLinux() || System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture !=
            System.Runtime.InteropServices.Architecture.X64)
        {
            reason = "the KVM engine runs on x86-64 Linux only";
            return false;
        }

        try
        {
            using var kvm = Open();
            reason = "";
            return true;
        }
        catch (HypervisorException ex)
        {
            reason = ex.Message;
            return false;
        }
    }

    public void Dispose() => Handle.Dispose();
}
