// How a vCPU thread is kicked out of KVM_RUN: kvm_run.immediate_exit plus a real-time signal sent to that thread.
//
// KVM_RUN only returns early (with EINTR) when a signal is *delivered* to the thread. A signal whose disposition is
// SIG_IGN is discarded at generation and a SIG_DFL one would kill the process, so the signal needs a handler. Running a
// managed method as a signal handler is not safe in .NET (the thread may hold runtime locks or be mid-GC transition),
// and we do not ship native code. PosixSignalRegistration does the right thing for us: for a raw signal number it
// installs the runtime's own native handler (System.Native's SignalHandler), which only writes the signal number to a
// pipe (async-signal-safe); the registered managed callback runs later on a thread-pool thread, where it sets Cancel
// so the runtime does not apply the default action (terminate) afterwards. The handler carries SA_RESTART, which does
// not matter here: KVM_RUN fails with plain -EINTR, which is never restarted.
//
// The race between "check for requests" and "enter KVM_RUN" is closed by immediate_exit (Documentation/virt/kvm/api.rst,
// "immediate_exit ... polled once when KVM_RUN starts"): the requester queues its request, sets immediate_exit, then
// signals. The vCPU thread clears immediate_exit *before* draining its queue, so a request is either seen by that drain
// or leaves immediate_exit set for the next KVM_RUN, which then returns at once; a signal landing outside KVM_RUN is
// harmless. The signal is SIGRTMIN+2: CoreCLR uses SIGRTMIN itself (thread activation injection for GC suspension),
// and glibc reserves the two below SIGRTMIN.
using System.Runtime.InteropServices;

namespace Orchestrator.Hypervisor.Kvm;

internal static class VcpuKick
{
    public const int SignalOffset = 2;

    private static readonly object Gate = new();
    private static int _signal;
    private static PosixSignalRegistration? _registration;

    /// <summary>The kick signal, with its handler installed (once per process).</summary>
    public static int Signal
    {
        get
        {
            lock (Gate)
            {
                if (_signal == 0)
                {
                    _signal = Install();
                }

                return _signal;
            }
        }
    }

    /// <summary>Sends the kick signal to thread <paramref name="threadId"/> of this process; false when it is gone.</summary>
    public static bool Send(int threadId)
    {
        var signal = Signal;
        if (LibC.Tgkill(Environment.ProcessId, threadId, signal) == 0)
        {
            return true;
        }

        var errno = Marshal.GetLastPInvokeError();
        return errno == 3 /* ESRCH */
            ? false
            : throw new HypervisorException($"tgkill of vCPU thread {threadId} failed: {LibC.Describe(errno)}");
    }

    /// <summary>The handler address now installed for <paramref name="signal"/> (SIG_DFL = 0, SIG_IGN = 1).</summary>
    internal static unsafe nint CurrentDisposition(int signal)
    {
        var old = stackalloc byte[LibC.SigactionSize];
        // Safe: act is NULL (nothing is changed) and old points at a buffer the size of glibc's struct sigaction.
        if (LibC.Sigaction(signal, 0, (nint)old) != 0)
        {
            throw new HypervisorException($"sigaction({signal}) failed: {LibC.Describe(Marshal.GetLastPInvokeError())}");
        }

        return *(nint*)old;
    }

    private static unsafe int Install()
    {
        var signal = LibC.CurrentSigRtMin() + SignalOffset;
        if (signal > LibC.CurrentSigRtMax())
        {
            throw new HypervisorException($"no real-time signal SIGRTMIN+{SignalOffset} on this system");
        }

        // The runtime respects an inherited SIG_IGN (it would install nothing); reset such a disposition to default.
        if (CurrentDisposition(signal) == LibC.SIG_IGN)
        {
            var action = stackalloc byte[LibC.SigactionSize];
            new Span<byte>(action, LibC.SigactionSize).Clear(); // sa_handler = SIG_DFL, no flags, empty mask
            // Safe: a zeroed glibc struct sigaction is a valid "default disposition" request.
            if (LibC.Sigaction(signal, (nint)action, 0) != 0)
            {
                throw new HypervisorException($"cannot reset signal {signal}: {LibC.Describe(Marshal.GetLastPInvokeError())}");
            }
        }

        _registration = PosixSignalRegistration.Create((PosixSignal)signal, context => context.Cancel = true);

        var handler = CurrentDisposition(signal);
        if (handler == LibC.SIG_DFL || handler == LibC.SIG_IGN)
        {
            throw new HypervisorException($"the runtime installed no handler for signal {signal}: vCPUs could not be kicked");
        }

        return signal;
    }
}
