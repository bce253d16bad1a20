using Orchestrator.Domain;
using Orchestrator.Domain.Shares;
using Orchestrator.Domain.Storage;
using Orchestrator.Hypervisor.Storage;
using Orchestrator.Hypervisor.Accel;
using Orchestrator.Hypervisor.Qemu;

namespace Orchestrator.Hypervisor.Tests;

public sealed class QemuArgumentsTests
{
    private static readonly GuestImage Image = new("demo", "/images/vmlinuz", "/images/initrd.img", "");

    [Fact]
    public void Qemu_arguments_carry_ids_and_numbers_but_never_the_tenants_vm_name()
    {
        var spec = new VmLaunchSpec(VmId.New(), "evil,name -append x", 2, 256, Image, new Epoch(3));
        var paths = VmPaths.For("/run/o/vms", spec.VmId.Compact);

        var argv = QemuDriver.BuildArguments("/usr/bin/qemu-system-x86_64", spec, paths, new QemuDriverOptions { RunDirectory = "/run/o" });

        Assert.DoesNotContain(argv, a => a.Contains("evil", StringComparison.Ordinal));
        Assert.Contains($"guest=vm-{spec.VmId.Compact},debug-threads=on", argv);
        Assert.Equal("2", argv[Array.IndexOf(argv, "-smp") + 1]);
        Assert.Equal("256", argv[Array.IndexOf(argv, "-m") + 1]);
        Assert.Equal("tcg,thread=multi", argv[Array.IndexOf(argv, "-accel") + 1]);
        Assert.Equal("console=ttyS0 quiet panic=-1", argv[Array.IndexOf(argv, "-append") + 1]);
        Assert.Contains("-sandbox", argv);
        Assert.Contains("-no-reboot", argv);
    }

    [Fact]
    public void Burn_and_operator_appends_go_on_the_kernel_command_line_and_kvm_uses_the_cpu_model_the_probe_booted()
    {
        var spec = new VmLaunchSpec(VmId.New(), "x", 1, 128, Image, Epoch.Zero, BurnCpu: true);
        var proved = AcceleratorVerdict.Decide(
            [
                new ProbeAttempt("kvm", "host", ProbeOutcome.ExitedAtStart, 40, "exit code 134"),
                new ProbeAttempt("kvm", "host,arch-capabilities=off,pmu=off", ProbeOutcome.Booted, 400, ""),
            ],
            "max", 440, DateTimeOffset.UtcNow);
        var options = new QemuDriverOptions { RunDirectory = "/run/o", ExtraKernelAppend = "orchestrator.poweroff=1", Accelerator = proved };

        var argv = QemuDriver.BuildArguments("qemu", spec, VmPaths.For("/run/o/vms", spec.VmId.Compact), options);

        Assert.Equal("console=ttyS0 quiet panic=-1 orchestrator.burn=1 orchestrator.poweroff=1", argv[Array.IndexOf(argv, "-append") + 1]);
        Assert.Equal("kvm", argv[Array.IndexOf(argv, "-accel") + 1]);
        Assert.Equal("host,arch-capabilities=off,pmu=off", argv[Array.IndexOf(argv, "-cpu") + 1]);
    }

    [Fact]
    public void A_driver_nobody_probed_for_runs_tcg_with_every_emulated_feature()
    {
        var spec = new VmLaunchSpec(VmId.New(), "x", 1, 128, Image, Epoch.Zero);

        var argv = QemuDriver.BuildArguments("qemu", spec, VmPaths.For("/run/o/vms", spec.VmId.Compact), new QemuDriverOptions { RunDirectory = "/run/o" });

        Assert.Equal("tcg,thread=multi", argv[Array.IndexOf(argv, "-accel") + 1]);
        Assert.Equal("max", argv[Array.IndexOf(argv, "-cpu") + 1]);
    }

    [Fact]
    public void Every_vm_gets_a_guest_agent_port_and_only_an_image_with_a_root_disk_gets_its_overlay_and_kernel_line()
    {
        var debian = new GuestImage("debian", "/images/vmlinuz", "/images/initrd.img", "", RootDiskPath: "/images/rootfs.qcow2", KernelAppend: "root=/dev/vda ro");
        var options = new QemuDriverOptions { RunDirectory = "/run/o" };
        var plain = new VmLaunchSpec(VmId.New(), "x", 1, 128, Image, Epoch.Zero);
        var full = plain with { Image = debian };
        var paths = VmPaths.For("/run/o/vms", full.VmId.Compact);

        var plainArgv = QemuDriver.BuildArguments("qemu", plain, paths, options);
        var fullArgv = QemuDriver.BuildArguments("qemu", full, paths, options);

        foreach (var argv in new[] { plainArgv, fullArgv })
        {
            Assert.Contains($"socket,id=qga0,path={paths.QgaSocket},server=on,wait=off", argv);
            Assert.Contains("virtserialport,chardev=qga0,name=org.qemu.guest_agent.0", argv);
        }

        Assert.DoesNotContain("-drive", plainArgv);
        Assert.DoesNotContain("-blockdev", plainArgv);
        Assert.Equal($"driver=file,filename={paths.RootDisk},node-name=root0-file,discard=unmap", fullArgv[Array.IndexOf(fullArgv, "-blockdev") + 1]);
        Assert.Contains("virtio-blk-pci,drive=root0", fullArgv);
        Assert.DoesNotContain(fullArgv, a => a.Contains("rootfs.qcow2", StringComparison.Ordinal)); // the base only backs the overlay
        Assert.Equal("console=ttyS0 quiet panic=-1 root=/dev/vda ro", fullArgv[Array.IndexOf(fullArgv, "-append") + 1]);
    }

    [Fact]
    public void Disk_limits_are_one_throttle_group_per_vm_over_its_disk_and_volumes_named_from_ids_only()
    {
        var spec = new VmLaunchSpec(VmId.New(), "acme-secret-payroll", 1, 128, Image, Epoch.Zero,
            Disk: new VmDiskRequest(1), DiskThrottle: new DiskThrottle(500, 4 * 1024 * 1024));
        var paths = VmPaths.For("/run/o/vms", spec.VmId.Compact);
        var disk = new PooledDisk("local", $"/pools/local/{spec.VmId.Compact}.qcow2", "qcow2");
        var volume = new VolumeAssignment("0123456789abcdef0123456789abcdef", "local", 1);
        var volumeFile = new PooledDisk("local", "/pools/local/volumes/0123456789abcdef0123456789abcdef.qcow2", "qcow2");

        var argv = QemuDriver.BuildArguments("qemu", spec, paths, new QemuDriverOptions { RunDirectory = "/run/o" }, disk, [(volume, volumeFile)]);

        Assert.Equal(["throttle-group,id=iotg0,x-iops-total=500,x-bps-total=4194304"], Values(argv, "-object"));
        var blockdevs = Values(argv, "-blockdev");
        Assert.Contains($"driver=file,filename={disk.DriveFile},node-name=disk0-file,discard=unmap", blockdevs);
        Assert.Contains("driver=qcow2,file=disk0-file,node-name=disk0-fmt,discard=unmap", blockdevs);
        Assert.Contains("driver=throttle,throttle-group=iotg0,file=disk0-fmt,node-name=disk0", blockdevs);
        Assert.Contains($"driver=throttle,throttle-group=iotg0,file={volume.NodeName},node-name=vt{volume.NodeName[2..]}", blockdevs);
        var devices = Values(argv, "-device");
        Assert.Contains($"virtio-blk-pci,drive=disk0,serial={QemuDriver.DiskSerial}", devices);
        Assert.Contains(devices, d => d.StartsWith($"virtio-blk-pci,drive=vt{volume.NodeName[2..]},id={volume.DeviceId},", StringComparison.Ordinal));
        Assert.DoesNotContain("-drive", argv);
        Assert.DoesNotContain(argv, a => a.Contains("acme", StringComparison.Ordinal) || a.Contains("payroll", StringComparison.Ordinal));

        var unlimited = QemuDriver.BuildArguments("qemu", spec with { DiskThrottle = null }, paths, new QemuDriverOptions { RunDirectory = "/run/o" }, disk);
        Assert.Equal(["throttle-group,id=iotg0,x-iops-total=0,x-bps-total=0"], Values(unlimited, "-object")); // there to be set later
    }

    private static List<string> Values(string[] argv, string option) =>
        argv.Select((a, i) => (a, i)).Where(x => x.a == option).Select(x => argv[x.i + 1]).ToList();

    [Fact]
    public void Commas_in_run_directory_paths_are_escaped_in_qemu_option_lists()
    {
        var spec = new VmLaunchSpec(VmId.New(), "x", 1, 128, Image, Epoch.Zero);

        var argv = QemuDriver.BuildArguments("qemu", spec, VmPaths.For("/run/a,b/vms", spec.VmId.Compact), new QemuDriverOptions { RunDirectory = "/run/a,b" });

        Assert.Contains($"socket,id=qmp0,path=/run/a,,b/vms/{spec.VmId.Compact}/qmp.sock,server=on,wait=off", argv);
    }

    [Fact]
    public void A_run_directory_too_long_for_unix_sockets_is_refused_with_a_clear_error()
    {
        var error = Assert.Throws<HypervisorException>(() => new QemuDriver(new QemuDriverOptions { RunDirectory = "/tmp/" + new string('r', 80) }));

        Assert.Contains("RunDirectory", error.Message);
        Assert.Contains("characters", error.Message);
    }
}
